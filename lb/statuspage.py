"""`/lb/status` for people: a small self-contained page that refreshes itself."""

from __future__ import annotations

import time
from html import escape

from lb.state import RouterState

REFRESH_S = 2
STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}
h1{font-size:1.3em} table{border-collapse:collapse;min-width:60%}
th,td{padding:.4em .8em;border-bottom:1px solid #ddd;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.state{display:inline-block;padding:.1em .6em;border-radius:1em;color:#fff;font-weight:600}
.up{background:#2e7d32}.draining{background:#ef6c00}.down{background:#c62828}
footer{margin-top:1em;color:#777;font-size:.9em}
"""


def render_status_page(state: RouterState) -> str:
    """Return the HTML page: each node's state, last check, ring share, sessions, rate, tunnels."""
    shares = state.ring.shares()
    now_ms = time.time_ns() // 1_000_000
    rows = []
    for backend in state.backends.values():
        shown = backend.state.value
        if backend.last_check_ms is None:
            checked = "not yet"
        else:
            checked = f"{(now_ms - backend.last_check_ms) / 1000:.1f} s ago ({backend.last_result})"
        live = "" if backend.live_sessions is None else str(backend.live_sessions)
        rows.append(
            "<tr>"
            f'<td class="node">{escape(backend.name)}{" (backup)" if backend.backup else ""}</td>'
            f'<td><span class="state {shown}" data-state="{shown}">{shown}</span></td>'
            f"<td>{escape(checked)}</td>"
            f'<td class="num">{backend.consecutive_failures}</td>'
            f'<td class="num">{shares.get(backend.name, 0.0) * 100:.1f}%</td>'
            f'<td class="num">{live}</td>'
            f'<td class="num">{state.observer.rates.get(backend.name, 0.0):.1f}</td>'
            f'<td class="num">{state.tunnels.count(backend.name)}</td>'
            "</tr>"
        )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="{REFRESH_S}">
<title>Co-browse cluster status</title><style>{STYLE}</style></head>
<body><h1>Co-browse cluster</h1>
<table><thead><tr><th>node</th><th>state</th><th>last check</th><th>failures</th>
<th>ring share</th><th>live sessions</th><th>requests/s</th><th>tunnels</th></tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody></table>
<footer>ring epoch {state.ring.current_epoch} · refreshes every {REFRESH_S} s ·
JSON: <code>curl {escape("/lb/status")}</code></footer>
</body></html>
"""
