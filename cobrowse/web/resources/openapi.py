"""`<context>/openapi.json`: the node's API contract, for its own context path."""

from __future__ import annotations

import json

import falcon
import falcon.asgi

from cobrowse.config.settings import NodeSettings
from cobrowse.web.openapi import document_for


class OpenApiResource:
    """Serve the OpenAPI document, serialised once: it only changes with the cluster file."""

    def __init__(self, settings: NodeSettings) -> None:
        self.body = json.dumps(document_for(settings)).encode()

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.content_type = falcon.MEDIA_JSON
        resp.data = self.body
