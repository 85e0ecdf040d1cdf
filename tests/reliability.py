"""What fault and bad-input tests record, and RELIABILITY.md made from it.

Each such test takes the `reliability` fixture, counts every request it makes (`trial.record`)
and the sessions it lost, and asserts on them. With `COBROWSE_RELIABILITY_REPORT=<file>` set,
every trial is appended to that file as a JSON line; `python -m tests.reliability <file>`
renders RELIABILITY.md from it (`scripts/reliability` does both).
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import requests

REPORT_ENV = "COBROWSE_RELIABILITY_REPORT"
REPO = Path(__file__).resolve().parents[1]


def error_class(outcome: int | BaseException) -> str | None:
    """Name the class of an outcome: None for a success, else a status or a failure kind."""
    if isinstance(outcome, int):
        return None if outcome < 400 else str(outcome)
    if isinstance(outcome, requests.exceptions.ConnectionError):
        text = str(outcome).lower()
        if "refused" in text:
            return "connection refused"
        if "reset" in text or "aborted" in text or "remotedisconnected" in text:
            return "connection reset"
        return "connection error"
    if isinstance(outcome, requests.exceptions.Timeout | TimeoutError):
        return "timeout"
    return type(outcome).__name__


@dataclass
class Trial:
    """One fault or bad input tried: requests made, sessions lost, errors by class."""

    name: str
    category: str = "fault"
    requests: int = 0
    sessions_lost: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    notes: str = ""

    def record(self, outcome: int | BaseException) -> None:
        """Count one request's outcome: an HTTP status or the exception the client saw."""
        self.requests += 1
        kind = error_class(outcome)
        if kind is not None:
            self.errors[kind] += 1

    def to_json(self) -> str:
        return json.dumps(
            {
                "name": self.name,
                "category": self.category,
                "requests": self.requests,
                "sessions_lost": self.sessions_lost,
                "errors": dict(sorted(self.errors.items())),
                "notes": self.notes,
            }
        )


def save(trial: Trial) -> None:
    """Append the trial to the report file, when one is asked for."""
    path = os.environ.get(REPORT_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as report:
            report.write(trial.to_json() + "\n")


def render(lines: list[dict[str, object]]) -> str:
    """Return RELIABILITY.md for the recorded trials."""
    rows = []
    for entry in lines:
        errors = entry["errors"]
        assert isinstance(errors, dict)
        error_text = ", ".join(f"{kind}: {count}" for kind, count in errors.items()) or "none"
        rows.append(
            f"| {entry['category']} | {entry['name']} | {entry['requests']} | "
            f"{entry['sessions_lost']} | {error_text} | {entry['notes']} |"
        )
    total_lost = sum(int(str(entry["sessions_lost"])) for entry in lines)
    return "\n".join(
        [
            "# Reliability report",
            "",
            "Every fault and bad input below was injected for real by an integration test",
            "(real Gunicorn nodes, the real router, HAProxy and nginx, real SQLite files and a",
            "real Redis on loopback), which counted the requests it made, the sessions it lost",
            "and the errors clients saw, by class. Regenerate this file with `scripts/reliability`",
            "(it runs those tests and rewrites it); the same tests run, and assert, in",
            "`scripts/test`. `scripts/reliability --failover` runs 10 trials of each shared-store",
            "failover (1 otherwise) for the median and worst times below.",
            "",
            f"Sessions lost in all trials: **{total_lost}** (the goal is 0).",
            "",
            "| kind | fault or bad input | requests | sessions lost | errors by class | notes |",
            "|---|---|---|---|---|---|",
            *rows,
            "",
        ]
    )


def main(argv: list[str]) -> int:
    source = Path(argv[1])
    lines = [json.loads(line) for line in source.read_text().splitlines() if line.strip()]
    lines.sort(key=lambda entry: (entry["category"] != "fault", entry["name"]))
    (REPO / "RELIABILITY.md").write_text(render(lines))
    print(f"wrote RELIABILITY.md from {len(lines)} trials")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
