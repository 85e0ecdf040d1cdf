"""`<context>/rest/live/sessions`: Create Session and Get Session."""

from __future__ import annotations

from typing import ClassVar

import falcon
import falcon.asgi
import orjson

from cobrowse.config.settings import NodeSettings
from cobrowse.sessions import userdata
from cobrowse.sessions.service import SessionService, Sweeper
from cobrowse.web.bodies import read_json_object
from cobrowse.web.clientinfo import ClientResolver
from cobrowse.web.cors import Operation

COOKIE_NAME = "gcbSessionServer"
SESSIONS_CREATE = Operation("sessions.create")
SESSIONS_GET = Operation("sessions.get", origin_required=True)


class StickinessCookie:
    """Set the `gcbSessionServer` cookie and header that stick a client to this node."""

    def __init__(self, settings: NodeSettings, clients: ClientResolver) -> None:
        self.node_name = settings.name
        self.clients = clients
        # The cookie never changes for a node: build both variants once (http.cookies is slow).
        # Third-party contexts need SameSite=None, which browsers only accept with Secure.
        base = f"{COOKIE_NAME}={settings.name}; Path={settings.context_path}; HttpOnly"
        self.over_http = f"{base}; SameSite=Lax"
        self.over_https = f"{base}; Secure; SameSite=None"

    def apply(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        """Stick the client to this node by cookie, and by header for cookie-less browsers."""
        https = self.clients.is_https(req)
        resp.append_header("Set-Cookie", self.over_https if https else self.over_http)
        resp.set_header(COOKIE_NAME, self.node_name)


class SessionsResource:
    """Create Session: `POST <context>/rest/live/sessions`."""

    operations: ClassVar[dict[str, Operation]] = {"POST": SESSIONS_CREATE}

    def __init__(
        self,
        service: SessionService,
        cookie: StickinessCookie,
        sweeper: Sweeper,
        max_body_size: int,
    ) -> None:
        self.service = service
        self.cookie = cookie
        self.sweeper = sweeper
        self.max_body_size = max_body_size
        self.server_url = service.settings.node.server_url

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        body = await read_json_object(req, self.max_body_size, SESSIONS_CREATE.name, required=False)
        user_data = None
        if body is not None and "userData" in body:
            parsed = userdata.parse(body["userData"], SESSIONS_CREATE.name)
            user_data = {key: value for key, value in parsed.items() if value is not None}
        with_csrf = (req.get_header("X-Support-CSRFP") or "").strip().lower() == "true"
        session = await self.service.create(with_csrf_token=with_csrf, user_data=user_data)
        self.cookie.apply(req, resp)
        if session.csrf_token is not None:
            resp.set_header("X-CSRF-Token", session.csrf_token)
        answer = {
            "sessionToken": session.session_token,
            "sessionServerName": self.service.settings.name,
            "userToken": session.user_token,
        }
        if self.server_url:
            # REALTIME.md: browsers open the channel under it (no redirect on a WebSocket).
            answer["sessionServerUrl"] = self.server_url
        resp.content_type = falcon.MEDIA_JSON
        resp.data = orjson.dumps(answer)
        await self.sweeper.maybe_sweep()


class SessionResource:
    """Get Session: `GET <context>/rest/live/sessions/{session_token}`."""

    operations: ClassVar[dict[str, Operation]] = {"GET": SESSIONS_GET}

    def __init__(self, service: SessionService) -> None:
        self.service = service
        self.server_name = service.settings.name
        self.server_url = service.settings.node.server_url

    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, session_token: str
    ) -> None:
        session = await self.service.get_live(session_token)
        body = {"sessionToken": session.session_token, "sessionServerName": self.server_name}
        if self.server_url:
            body["sessionServerUrl"] = self.server_url
        body["screenCapture"] = session.screen_capture
        # orjson directly: Falcon's media handler costs more than the lookup itself here.
        resp.content_type = falcon.MEDIA_JSON
        resp.data = orjson.dumps(body)
