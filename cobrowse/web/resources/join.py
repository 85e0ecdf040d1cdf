"""`<context>/rest/live/sessions/{sessionToken}/join`: an agent joins by the 9-digit code."""

from __future__ import annotations

import json
from typing import ClassVar

import falcon
import falcon.asgi

from cobrowse.errors import BadRequestError
from cobrowse.realtime.messages import MAX_NAME
from cobrowse.realtime.service import JOIN, LiveService
from cobrowse.web.bodies import read_json_object
from cobrowse.web.cors import Operation

SESSIONS_JOIN = Operation(JOIN, origin_required=True)


class JoinResource:
    """Join Session: `POST <context>/rest/live/sessions/{session_token}/join` (REALTIME.md)."""

    operations: ClassVar[dict[str, Operation]] = {"POST": SESSIONS_JOIN}

    def __init__(self, live: LiveService, node_name: str, server_url: str | None, max_body: int):
        self.live = live
        self.node_name = node_name
        self.server_url = server_url
        self.max_body = max_body

    async def on_post(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, session_token: str
    ) -> None:
        body = await read_json_object(req, self.max_body, JOIN, required=False) or {}
        name = body.get("name", "")
        if not isinstance(name, str) or len(name) > MAX_NAME:
            raise BadRequestError(
                f"name is a string of at most {MAX_NAME} characters.", operation=JOIN
            )
        joined = await self.live.join(session_token, name.strip())
        answer: dict[str, object] = {
            "userToken": joined.agent.user_token,
            "userId": joined.agent.user_id,
            "sessionToken": joined.session.session_token,
            "sessionServerName": self.node_name,
        }
        if self.server_url:
            answer["sessionServerUrl"] = self.server_url
        answer["userData"] = self.live.readable_data(joined.session.user_data)
        resp.content_type = falcon.MEDIA_JSON
        resp.text = json.dumps(answer)
