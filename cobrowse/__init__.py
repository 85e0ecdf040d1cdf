"""Co-browse session-server cluster node: Falcon app, SQLite store, Gunicorn runner and CLI."""

__version__ = "0.1.0"
