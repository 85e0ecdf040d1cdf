"""The baselines: Falcon "hello world", one JSON route `/hello` (GET and POST), ASGI and WSGI.

`create_hello_app()` (ASGI) is served under exactly the node's Gunicorn settings (its worker
class and count): the ratios of `scripts/bench node` are to it. `create_wsgi_hello_app()` is the
previous baseline, served by Gunicorn's plain gthread worker (2 workers of 1 thread, the node's
setting before the ASGI move), so that the gain of the move shows in the same run.
"""

from __future__ import annotations

import falcon
import falcon.asgi

MESSAGE = {"message": "Hello, World!"}


class AsyncHello:
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.media = MESSAGE

    on_post = on_get


class Hello:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = MESSAGE

    on_post = on_get


def create_hello_app() -> falcon.asgi.App:
    """Return the ASGI hello world: the baseline of the node's ratios."""
    app = falcon.asgi.App()
    app.add_route("/hello", AsyncHello())
    return app


def create_wsgi_hello_app() -> falcon.App:
    """Return the WSGI hello world: the previous baseline (gthread)."""
    app = falcon.App()
    app.add_route("/hello", Hello())
    return app
