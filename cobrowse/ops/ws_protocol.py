"""The node's WebSocket protocol: Uvicorn's `websockets` (sans-I/O) one with its deflate choice.

Uvicorn offers permessage-deflate with context takeover both ways (a 12-bit window, memLevel 5):
each channel then keeps a compressor and a decompressor for its whole life, about 48 KB, which is
most of what an idle co-browse session costs a node. `[realtime] compression` chooses:

- `message` (the default): no context takeover either way (RFC 7692 `server_no_context_takeover`
  and `client_no_context_takeover`; browsers accept both): each message is compressed on its
  own, so a channel holds no zlib state between messages. About half the ratio of `context`
  on the small batches rrweb sends (the recording fixture: 2.5x instead of 4.7x).
- `context`: Uvicorn's setting, the best ratio, for clients on slow links.
- `off`: no compression.
"""

from __future__ import annotations

from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory

WINDOW_BITS = 12
MEMORY_LEVEL = 5


def deflate_extensions(compression: str) -> list[ServerPerMessageDeflateFactory]:
    """Return the extensions a channel offers for `[realtime] compression`."""
    if compression == "off":
        return []
    per_message = compression == "message"
    return [
        ServerPerMessageDeflateFactory(
            server_max_window_bits=WINDOW_BITS,
            client_max_window_bits=WINDOW_BITS,
            server_no_context_takeover=per_message,
            client_no_context_takeover=per_message,
            compress_settings={"memLevel": MEMORY_LEVEL},
        )
    ]


class NodeWebSocketProtocol(WebSocketsSansIOProtocol):
    """Uvicorn's sans-I/O WebSocket protocol, negotiating deflate as the node is configured."""

    def __init__(self, config: Config, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        options = getattr(config, "cobrowse_options", None)
        compression = "message" if options is None else options.ws_compression
        # Negotiated at the handshake, after construction: replacing the offer is enough.
        self.conn.available_extensions = deflate_extensions(compression)
