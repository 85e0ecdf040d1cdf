"""`[security] rateLimit`: fixed one-minute windows per client and operation, with quarantine.

After the vendor's Service Client API: once a client exceeds an operation's per-minute limit,
further requests of that operation are refused for `rateLimitQuarantineDelay` seconds (0 means
forever), with the vendor's message. Counters live in the node's store, so the limit holds
across every worker and restart.
"""

from __future__ import annotations

from typing import Any

import falcon.asgi

from cobrowse.clock import Clock
from cobrowse.config.settings import RateLimitSettings
from cobrowse.errors import RateLimitedError
from cobrowse.store import RateLimitStore
from cobrowse.web.clientinfo import ClientResolver


def quarantine_message(operation: str, delay_s: float) -> str:
    """Return the vendor's rate-limit message for `operation`."""
    if delay_s == 0:
        ignored = "forever"
    else:
        seconds = int(delay_s) if float(delay_s).is_integer() else delay_s
        ignored = f"for {seconds} seconds"
    return (
        f"The rate limit for the request '{operation}' has been reached.\n"
        f"Further requests of the same type will be ignored {ignored}."
    )


class RateLimitMiddleware:
    """Count each limited operation (set by the CORS middleware) and refuse in quarantine."""

    def __init__(
        self,
        settings: RateLimitSettings,
        store: RateLimitStore,
        clients: ClientResolver,
        clock: Clock,
    ) -> None:
        self.settings = settings
        self.store = store
        self.clients = clients
        self.clock = clock
        self.quarantine_ms = round(settings.quarantine_delay * 1000)

    async def process_resource(
        self,
        req: falcon.asgi.Request,
        resp: falcon.asgi.Response,
        resource: Any,
        params: dict[str, Any],
    ) -> None:
        operation: str | None = getattr(req.context, "operation", None)
        if operation is None:
            return
        limit = self.settings.limit_for(operation)
        if limit <= 0:
            return  # unlimited: no counting, no write
        decision = await self.store.hit(
            self.clients.address(req), operation, self.clock.now_ms(), limit, self.quarantine_ms
        )
        if decision.allowed:
            return
        headers = {}
        if decision.retry_after_s is not None:
            headers["Retry-After"] = str(decision.retry_after_s)
        raise RateLimitedError(
            quarantine_message(operation, self.settings.quarantine_delay),
            operation=operation,
            headers=headers,
        )
