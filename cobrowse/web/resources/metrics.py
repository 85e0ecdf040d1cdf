"""`<context>/metrics`: the node's Prometheus metrics, summed over its workers."""

from __future__ import annotations

import falcon
import falcon.asgi

from cobrowse.observe.metrics import NodeMetrics


class MetricsResource:
    """Serve the Prometheus text format. Not CORS-exposed: scrape it from the operator network."""

    def __init__(self, metrics: NodeMetrics) -> None:
        self.metrics = metrics

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        body, content_type = await self.metrics.exposition()
        resp.content_type = content_type
        resp.data = body
