"""The demo website of `cobrowse cluster`: a customer's site that includes the customer script.

A few static pages (`cobrowse/static/demo/`) served on their own port (default 8080, the origin
the generated cluster file allows), with `{{CLUSTER_URL}}` replaced by the cluster's URL: the
script tag loads `cobrowse.js` cross-origin from the cluster, as on a real site.
"""

from __future__ import annotations

import argparse
import mimetypes
import signal
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType

DEMO_ROOT = Path(__file__).resolve().parents[1] / "static" / "demo"
PLACEHOLDER = b"{{CLUSTER_URL}}"


def demo_pages(cluster_url: str, root: Path = DEMO_ROOT) -> dict[str, tuple[bytes, str]]:
    """Return the site's files by URL path, with the cluster URL filled in."""
    pages: dict[str, tuple[bytes, str]] = {}
    for path in sorted(root.iterdir()):
        if not path.is_file():
            continue
        body = path.read_bytes().replace(PLACEHOLDER, cluster_url.rstrip("/").encode())
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        if content_type.startswith("text/"):
            content_type += "; charset=utf-8"
        pages[f"/{path.name}"] = (body, content_type)
    pages["/"] = pages["/index.html"]
    return pages


class DemoServer(ThreadingHTTPServer):
    """The demo site, from memory."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], cluster_url: str) -> None:
        self.pages = demo_pages(cluster_url)
        super().__init__(address, DemoHandler)


class DemoHandler(BaseHTTPRequestHandler):
    server: DemoServer
    server_version = "cobrowse-demo"

    def do_GET(self) -> None:
        self._answer(send_body=True)

    def do_HEAD(self) -> None:
        self._answer(send_body=False)

    def _answer(self, send_body: bool) -> None:
        page = self.server.pages.get(self.path.split("?", 1)[0])
        if page is None:
            body, content_type, status = b"Not found\n", "text/plain", HTTPStatus.NOT_FOUND
        else:
            (body, content_type), status = page, HTTPStatus.OK
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # quiet: the cluster's logs are the nodes' and the router's


def serve(host: str, port: int, cluster_url: str) -> None:
    """Serve until SIGTERM or SIGINT."""
    server = DemoServer((host, port), cluster_url)

    def stop(signum: int, frame: FrameType | None) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"demo site on http://localhost:{port}/ (cluster {cluster_url})", flush=True)
    server.serve_forever()
    server.server_close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--cluster-url", required=True, help="e.g. http://127.0.0.1:8700/cobrowse")
    args = parser.parse_args(argv)
    serve(args.host, args.port, args.cluster_url)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
