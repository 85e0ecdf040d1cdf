"""Session rules, tokens and the ring, independent of HTTP."""
