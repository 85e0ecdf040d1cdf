"""Gunicorn settings of a Co-browse node, for Gunicorn's own entry point.

    COBROWSE_CONFIG=/etc/cobrowse/cluster.ini COBROWSE_NODE=node-1 \\
        gunicorn -c deploy/gunicorn.conf.py 'cobrowse.web.app:get_app()'

runs the node as `cobrowse node --config /etc/cobrowse/cluster.ini --name node-1` does, with
the same settings: those `scripts/bench node` chose (README "Performance"), from
`cobrowse.ops.node.gunicorn_options`. Keep settings there, not here, so both ways stay the same.
"""

import os

from cobrowse.config.loader import CONFIG_ENV, NODE_ENV, load_cluster
from cobrowse.ops.node import gunicorn_options, prepare_node_process

if not os.environ.get(CONFIG_ENV) or not os.environ.get(NODE_ENV):
    raise RuntimeError(f"set {CONFIG_ENV} (the cluster file) and {NODE_ENV} (the node's name)")

_settings = load_cluster(os.environ[CONFIG_ENV]).node_settings(os.environ[NODE_ENV])
# As `cobrowse node` does before it forks: data and metrics directories, logging.
prepare_node_process(_settings)
# Gunicorn reads a config file's module-level names as its settings.
globals().update(gunicorn_options(_settings))
