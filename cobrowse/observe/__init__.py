"""Observation shared by nodes and the router: metrics, access logs, process logs."""
