"""The baseline: Falcon "hello world", served by exactly the node's Gunicorn settings."""

from __future__ import annotations

import falcon


class Hello:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"message": "Hello, World!"}

    on_post = on_get


def create_hello_app() -> falcon.App:
    app = falcon.App()
    app.add_route("/hello", Hello())
    return app
