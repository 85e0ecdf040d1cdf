"""The realtime channel (REALTIME.md): join, consent, the live log, delivery across workers."""
