"""`<context>/rest/live/users/{userToken}/...`: the Controller's calls."""

from __future__ import annotations

import json
from typing import ClassVar

import falcon
import falcon.asgi

from cobrowse.sessions import screencapture
from cobrowse.sessions.service import SessionService
from cobrowse.web.bodies import read_json_object
from cobrowse.web.cors import Operation

SESSIONS_STOP = Operation("sessions.stop")
SESSIONS_PING = Operation("sessions.ping")
SESSIONS_SCREEN_CAPTURE = Operation(screencapture.OPERATION)


def _json(resp: falcon.asgi.Response, body: dict[str, object]) -> None:
    resp.content_type = falcon.MEDIA_JSON
    resp.text = json.dumps(body)


class StopResource:
    """Stop Session: `GET <context>/rest/live/users/{user_token}/session/stop`."""

    operations: ClassVar[dict[str, Operation]] = {"GET": SESSIONS_STOP}

    def __init__(self, service: SessionService) -> None:
        self.service = service

    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, user_token: str
    ) -> None:
        result = await self.service.stop(user_token, req.get_header("X-CSRF-Token"))
        session = result.session
        _json(
            resp,
            {
                "activationTime": session.activation_time,
                "deactivationTime": session.deactivation_time,
            },
        )


class PingResource:
    """Keepalive: `GET <context>/rest/live/users/{user_token}/ping` (the polling API's ping)."""

    operations: ClassVar[dict[str, Operation]] = {"GET": SESSIONS_PING}

    def __init__(self, service: SessionService) -> None:
        self.service = service

    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, user_token: str
    ) -> None:
        await self.service.ping(user_token, req.get_header("X-CSRF-Token"))
        resp.status = falcon.HTTP_200
        resp.text = ""


class ScreenCaptureResource:
    """Screen-capture control: `POST <context>/rest/live/users/{user_token}/screen-capture`."""

    operations: ClassVar[dict[str, Operation]] = {"POST": SESSIONS_SCREEN_CAPTURE}

    def __init__(self, service: SessionService, max_body_size: int) -> None:
        self.service = service
        self.max_body_size = max_body_size

    async def on_post(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, user_token: str
    ) -> None:
        body = await read_json_object(
            req, self.max_body_size, screencapture.OPERATION, required=True
        )
        action = screencapture.parse_action(body)
        state = await self.service.screen_capture(
            user_token, action, req.get_header("X-CSRF-Token")
        )
        _json(resp, {"screen-capture": state})
