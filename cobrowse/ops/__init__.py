"""Running things: the node under Gunicorn, the local cluster, reloads, LB configs."""
