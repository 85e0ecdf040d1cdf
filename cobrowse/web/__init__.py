"""The node's web layer: the ASGI app, its middleware, resources and error mapping."""
