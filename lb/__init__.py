"""The router: a small reverse proxy that keeps every request on the node hosting its session."""
