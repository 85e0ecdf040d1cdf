"""Real browsers on a real local cluster with its demo site: Playwright driving Debian's chromium.

`DemoCluster` is what `cobrowse cluster` runs (three nodes, the router, the demo website), on
free loopback ports; `Browsers` is one headless chromium (never downloaded: /usr/bin/chromium)
with two isolated contexts, the customer's and the agent's. Every frame the customer's pages
send on a WebSocket is captured (WebSocket.prototype.send is wrapped before any script runs),
with the time it was sent. Used by tests/integration/test_browser_cobrowse.py and record_demo.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cobrowse.config.clusterfile import free_port
from cobrowse.config.loader import load_cluster
from cobrowse.config.settings import ClusterConfig
from cobrowse.ops.cluster import LocalCluster, Part, cluster_parts, console_url, generate_cluster
from tests.helpers import REPO, free_port_block, wait_until_responds

ARTIFACTS = Path(os.environ.get("COBROWSE_TEST_ARTIFACTS", str(REPO / "test-artifacts")))
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CUSTOMER_VIEWPORT = {"width": 1100, "height": 760}
AGENT_VIEWPORT = {"width": 1280, "height": 900}
# Runs in the customer's pages before their own scripts: every frame sent is reported.
CAPTURE_SENT = """
(() => {
  const send = WebSocket.prototype.send;
  WebSocket.prototype.send = function (data) {
    try { window.__cobrowseSent(String(data), Date.now()); } catch (error) {}
    return send.call(this, data);
  };
})();
"""


@dataclass
class DemoCluster:
    """Three nodes, the router and the demo site, as `cobrowse cluster` runs them."""

    directory: Path
    config: ClusterConfig
    parts: dict[str, Part]
    cluster: LocalCluster
    demo_url: str
    console_url: str

    @classmethod
    def start(
        cls,
        directory: Path,
        sections: dict[str, dict[str, str]] | None = None,
        demo_port: int | None = None,
    ) -> DemoCluster:
        port = free_port_block(5)  # the router, three nodes, HAProxy's stats (unused)
        demo_port = demo_port or free_port()
        chosen: dict[str, dict[str, str]] = {
            # Tests stop nodes at once, and the router notices a node back quickly.
            "cluster": {"shutdownDelay": "0"},
            "lb": {"checkInterval": "0.3"},
            "security": {"rateLimit.sessions.join": "0"},
        }
        for section, options in (sections or {}).items():
            chosen.setdefault(section, {}).update(options)
        path = generate_cluster(directory, 3, port, demo_port=demo_port, sections=chosen)
        config = load_cluster(path)
        parts = cluster_parts(config, path, directory / "logs", "router", demo_port)
        cluster = LocalCluster(parts)
        cluster.start(deadline=40)
        return cls(
            directory,
            config,
            {part.name: part for part in parts},
            cluster,
            f"http://localhost:{demo_port}",
            console_url(config),
        )

    def stop(self) -> None:
        self.cluster.stop()

    def restart(self, name: str) -> None:
        """SIGTERM a node (its whole process group), wait for it to exit, start it again."""
        part = self.parts[name]
        part.signal_group(signal.SIGTERM)
        assert part.process is not None
        part.process.wait(20)
        part.start()
        wait_until_responds(part.health_url, deadline=30)

    def database(self, name: str) -> Path:
        return self.config.node_settings(name).database_path

    def logs(self) -> str:
        return "\n".join(
            path.read_text(errors="replace") for path in sorted((self.directory / "logs").iterdir())
        )


@dataclass
class Browsers:
    """One headless chromium, two isolated contexts: the customer's and the agent's."""

    playwright: Any
    browser: Any
    customer: Any  # a Page
    agent: Any
    sent: list[tuple[int, str]] = field(default_factory=list)  # (ms, frame) from the customer
    agent_sent: list[tuple[int, str]] = field(default_factory=list)  # (ms, frame) from the agent
    errors: list[str] = field(default_factory=list)

    @classmethod
    def start(cls) -> Browsers:
        from playwright.sync_api import sync_playwright

        playwright = sync_playwright().start()
        try:
            # Playwright gives each launch a fresh, temporary user-data-dir.
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, args=FLAGS, headless=True
            )
        except BaseException:
            playwright.stop()
            raise
        customer_context = browser.new_context(viewport=CUSTOMER_VIEWPORT)
        agent_context = browser.new_context(viewport=AGENT_VIEWPORT)
        browsers = cls(playwright, browser, customer_context.new_page(), agent_context.new_page())
        for context, frames in (
            (customer_context, browsers.sent),
            (agent_context, browsers.agent_sent),
        ):
            context.expose_function(
                "__cobrowseSent", lambda text, at, frames=frames: frames.append((int(at), text))
            )
            context.add_init_script(CAPTURE_SENT)
        for who, page in (("customer", browsers.customer), ("agent", browsers.agent)):
            page.on("pageerror", lambda error, who=who: browsers.errors.append(f"{who}: {error}"))
            page.set_default_timeout(10_000)
        return browsers

    def stop(self) -> None:
        self.browser.close()
        self.playwright.stop()

    def sent_events(self) -> list[tuple[int, dict[str, Any]]]:
        """The customer's `events` frames, parsed, with the time each was sent."""
        return self.frames("events")

    def frames(self, kind: str, agent: bool = False) -> list[tuple[int, dict[str, Any]]]:
        """Frames of `kind` that the customer (or the agent) sent, parsed, with their times."""
        parsed = [(at, json.loads(text)) for at, text in (self.agent_sent if agent else self.sent)]
        return [(at, frame) for at, frame in parsed if frame.get("type") == kind]

    def screenshot(self, page: Any, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"browser-{name}.png"
        page.screenshot(path=str(path))
        return path


def widget(page: Any, selector: str) -> Any:
    """A locator inside the customer script's widget (Playwright's CSS pierces its shadow root)."""
    return page.locator(f"[data-cobrowse-widget] {selector}")


def start_cobrowsing(page: Any, url: str) -> str:
    """The customer opens `url`, presses Co-browse, and reads the 9-digit code."""
    page.goto(url)
    page.get_by_role("button", name="Co-browse").click()
    code = widget(page, "[data-cobrowse-code]").get_attribute("data-cobrowse-code")
    assert code is not None
    assert code.isdigit()
    assert len(code) == 9
    return str(code)


def join_as_agent(page: Any, console: str, code: str, name: str) -> None:
    """The agent opens the console, enters the code and a name, and joins."""
    page.goto(console)
    page.fill("#code", code)
    page.fill("#name", name)
    page.click("#join-button")


def replay(page: Any) -> Any:
    """The agent's replay of the customer's page (rrweb's sandboxed iframe)."""
    return page.frame_locator("#replay iframe")


def wait_for(page: Any, condition: Any, deadline: float, what: str) -> Any:
    """Poll `condition` until it is truthy; fail after `deadline` seconds.

    Waits with the page's timer, not time.sleep: Playwright's sync API delivers what the pages
    report (the captured frames) only while it runs.
    """
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        result = condition()
        if result:
            return result
        page.wait_for_timeout(50)
    raise TimeoutError(f"{what}: not true after {deadline}s")


def now_ms() -> int:
    return int(time.time() * 1000)
