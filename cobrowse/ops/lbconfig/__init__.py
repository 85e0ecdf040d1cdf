"""Generate load-balancer configurations (HAProxy, nginx) from the cluster file.

Each generator is a pure function from a ClusterConfig to the text of a configuration file, so
the configuration in `deploy/` and the one a test runs are produced by the same code.
"""
