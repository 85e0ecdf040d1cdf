"""Settings: the cluster file, read and validated in one place."""
