"""`<context>/rest/live/users/{userToken}/...`: the Controller's calls."""

from __future__ import annotations

from typing import ClassVar

import falcon

from cobrowse.cors import Operation
from cobrowse.sessions import SessionService

SESSIONS_STOP = Operation("sessions.stop")


class StopResource:
    """Stop Session: `GET <context>/rest/live/users/{user_token}/session/stop`."""

    operations: ClassVar[dict[str, Operation]] = {"GET": SESSIONS_STOP}

    def __init__(self, service: SessionService) -> None:
        self.service = service

    def on_get(self, req: falcon.Request, resp: falcon.Response, user_token: str) -> None:
        session = self.service.stop(user_token).session
        resp.media = {
            "activationTime": session.activation_time,
            "deactivationTime": session.deactivation_time,
        }
