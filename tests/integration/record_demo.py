"""Record a real rrweb session of the demo site, as the load tests' fixture.

    python -m tests.integration.record_demo [--out loadtests/fixtures/demo-recording.json]
        [--screenshot docs/agent-console.png]

Runs what `scripts/cluster` runs (three nodes, the router, the demo site) and headless chromium:
the customer starts co-browsing, an agent joins and is accepted, then about a minute of scripted
browsing (moving the mouse, typing at a person's pace, scrolling, three page changes). Every
`events` frame the customer's page sends is kept as it was sent: `[{"t": <ms since the first
batch>, "events": [...]}, ...]`, the rrweb events with their real timestamps. Prints the
figures (full-snapshot size, events and bytes per second, batch sizes). Not part of the suite: it
takes a minute.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import tempfile
from pathlib import Path
from typing import Any

from tests.helpers import REPO
from tests.integration.browser import Browsers, DemoCluster, join_as_agent, start_cobrowsing

OUT = REPO / "loadtests" / "fixtures" / "demo-recording.json"
SCREENSHOT = REPO / "docs" / "agent-console.png"


def browse(browsers: Browsers, demo_url: str, screenshot: Path | None) -> None:
    """About a minute of a customer's browsing, at a person's pace."""
    page = browsers.customer
    mouse, keyboard = page.mouse, page.keyboard

    def wander(points: list[tuple[int, int]]) -> None:
        for x, y in points:
            mouse.move(x, y, steps=12)
            page.wait_for_timeout(250)

    def type_into(selector: str, text: str) -> None:
        page.click(selector)
        keyboard.type(text, delay=140)
        page.wait_for_timeout(600)

    # Home: read, scroll down and back, go to the form.
    wander([(200, 150), (520, 240), (700, 420), (400, 600)])
    for _ in range(4):
        mouse.wheel(0, 160)
        page.wait_for_timeout(400)
    for _ in range(4):
        mouse.wheel(0, -160)
        page.wait_for_timeout(300)
    page.get_by_role("link", name="Get a quote").first.click()
    page.wait_for_load_state()
    page.wait_for_timeout(1500)
    # The form: fields typed at about 7 keys a second, with pauses.
    type_into("#name", "Grace Hopper")
    type_into("#email", "grace@example.com")
    type_into("#address", "1 Harbour Road\nPortsmouth PO1 3AX")
    page.select_option("#plan", "both")
    page.wait_for_timeout(800)
    type_into("#card", "4929 1234 5678 1234")  # masked: asterisks in the recording
    type_into("#password", "correct-horse-battery")  # masked
    if screenshot is not None:
        agent = browsers.agent
        box = agent.frame_locator("#replay iframe").locator("#plan").bounding_box()
        if box:
            agent.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] / 2, steps=8)
        agent.wait_for_timeout(800)
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        agent.screenshot(path=str(screenshot))
    for _ in range(5):
        mouse.wheel(0, 140)
        page.wait_for_timeout(350)
    wander([(300, 500), (260, 690)])
    page.get_by_role("button", name="See plans").click()
    page.wait_for_load_state()
    # Plans: look around, back to the form, correct a field, home.
    wander([(260, 330), (620, 330), (960, 380), (900, 440), (640, 485)])
    for _ in range(3):
        mouse.wheel(0, 120)
        page.wait_for_timeout(500)
    wander([(380, 560), (650, 600), (900, 580)])
    for _ in range(3):
        mouse.wheel(0, -120)
        page.wait_for_timeout(400)
    page.wait_for_timeout(1500)
    page.get_by_role("link", name="go back to the form").click()
    page.wait_for_load_state()
    page.wait_for_timeout(1000)
    page.click("#email")
    keyboard.press("End")
    for _ in range(11):
        keyboard.press("Backspace")
        page.wait_for_timeout(90)
    keyboard.type("harbour.example", delay=140)
    page.wait_for_timeout(1000)
    page.click("#address")
    keyboard.press("Control+End")
    keyboard.type("\nFlat 2, second floor, the door on the left", delay=140)
    page.wait_for_timeout(1500)
    page.get_by_role("link", name="Home").click()
    page.wait_for_load_state()
    wander([(300, 200), (640, 300), (520, 520)])
    for _ in range(4):
        mouse.wheel(0, 150)
        page.wait_for_timeout(450)
    wander([(700, 380), (420, 460)])
    page.wait_for_timeout(2000)


def batches(browsers: Browsers) -> list[dict[str, Any]]:
    """The customer's batches as sent (each cseq once), timed from the first."""
    seen: set[int] = set()
    kept = []
    for at, frame in browsers.sent_events():
        if frame["cseq"] not in seen:
            seen.add(frame["cseq"])
            kept.append((at, frame["data"]))
    start = kept[0][0]
    return [{"t": at - start, "events": events} for at, events in kept]


def figures(recording: list[dict[str, Any]]) -> dict[str, Any]:
    """What the load tests need to know about the recording."""
    seconds = (recording[-1]["t"] or 1) / 1000
    sizes = [len(json.dumps(batch["events"], separators=(",", ":"))) for batch in recording]
    counts = [len(batch["events"]) for batch in recording]
    snapshots = [
        len(json.dumps(event, separators=(",", ":")))
        for batch in recording
        for event in batch["events"]
        if event.get("type") == 2
    ]
    sizes_sorted = sorted(sizes)
    return {
        "seconds": round(seconds, 1),
        "batches": len(recording),
        "events": sum(counts),
        "bytes": sum(sizes),
        "full_snapshots": len(snapshots),
        "full_snapshot_bytes": snapshots,
        "events_per_second": round(sum(counts) / seconds, 1),
        "bytes_per_second": round(sum(sizes) / seconds),
        "batches_per_second": round(len(recording) / seconds, 1),
        "batch_bytes": {
            "min": sizes_sorted[0],
            "median": round(statistics.median(sizes)),
            "p95": sizes_sorted[int(0.95 * (len(sizes) - 1))],
            "max": sizes_sorted[-1],
        },
        "events_per_batch": {"median": statistics.median(counts), "max": max(counts)},
    }


def demo_port() -> int | None:
    """8080 as `scripts/cluster` has it, if free: the recorded URLs read as a newcomer's."""
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", 8080))
        except OSError:
            return None
    return 8080


def record(out: Path, screenshot: Path | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="record-demo-") as directory:
        cluster = DemoCluster.start(Path(directory), demo_port=demo_port())
        try:
            browsers = Browsers.start()
            try:
                code = start_cobrowsing(browsers.customer, f"{cluster.demo_url}/")
                join_as_agent(browsers.agent, cluster.console_url, code, "Ann")
                browsers.customer.get_by_role("button", name="Accept").click()
                browsers.agent.frame_locator("#replay iframe").locator("h1").wait_for()
                browse(browsers, cluster.demo_url, screenshot)
                browsers.customer.wait_for_timeout(500)  # the last batch
                recording = batches(browsers)
            finally:
                browsers.stop()
        finally:
            cluster.stop()
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w") as file:  # one batch a line: readable diffs
        file.write("[\n")
        file.write(",\n".join(json.dumps(batch, separators=(",", ":")) for batch in recording))
        file.write("\n]\n")
    return figures(recording)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument(
        "--screenshot",
        type=Path,
        default=SCREENSHOT,
        help="also save the agent console mid-way (default %(default)s; 'none' to skip)",
    )
    args = parser.parse_args(argv)
    screenshot = None if str(args.screenshot) == "none" else args.screenshot
    print(json.dumps(record(args.out, screenshot), indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
