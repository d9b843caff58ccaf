"""report.html of a replay: what a person reads to check a receipt (SPEC section 5).

Pure: the replay's own outputs (receipts, basket events, metrics, stage timings) in, one
self-contained HTML page out: no scripts, no external files, every value escaped, because
receipts carry customer ids and product names that came from untrusted codes and files.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

from store_runtime.scoring import realtime_factor

_STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:72em;color:#222}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.5em 0}td,th{padding:.2em .7em;border-bottom:1px solid #eee;text-align:left}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.charged{color:#186a2e}.review{color:#a05a00}.open{color:#555}.bad{color:#b00020}
svg text{font:11px system-ui,sans-serif}
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _money(cents: int, currency: str) -> str:
    return f"{cents / 100:.2f} {_e(currency)}"


def _receipts(receipts: Sequence[Mapping[str, Any]], names: Mapping[str, str], currency: str) -> str:
    if not receipts:
        return "<p>No sessions.</p>"
    rows = []
    for r in receipts:
        lines = "<br>".join(f"{line['qty']} × {_e(names.get(line['gtin'], line['gtin']))} "
                            f"<small>({_e(line['gtin'])}, {_money(line['unit_cents'], currency)})</small>"
                            for line in r["lines"]) or "<i>nothing</i>"
        exited = "—" if r.get("exited_t") is None else f"{r['exited_t']:.2f} s"
        rows.append(f"<tr><td>{_e(r['customer'])}</td><td><code>{_e(r['session'])}</code></td>"
                    f"<td class=n>{r['entered_t']:.2f} s</td><td class=n>{exited}</td><td>{lines}</td>"
                    f"<td class=n>{_money(r['total_cents'], currency)}</td>"
                    f"<td class={_e(r['status'])}>{_e(r['status'])}</td></tr>")
    return ("<table><tr><th>customer</th><th>session</th><th class=n>entered</th><th class=n>exited</th>"
            "<th>lines</th><th class=n>total</th><th>status</th></tr>" + "".join(rows) + "</table>")


def _timeline(receipts: Sequence[Mapping[str, Any]], events: Sequence[Mapping[str, Any]],
              names: Mapping[str, str], duration: float) -> str:
    """One lane per session: its time in the store as a bar, each pick (▲) and put (▼) on it."""
    if not receipts or duration <= 0:
        return "<p>No sessions.</p>"
    width, lane, left = 900, 34, 120
    scale = (width - left - 10) / duration
    parts = []
    for i, r in enumerate(receipts):
        y = 10 + i * lane
        start = r["entered_t"]
        end = r["exited_t"] if r.get("exited_t") is not None else duration
        parts.append(f'<text x="4" y="{y + 14}">{_e(r["customer"])}</text>'
                     f'<rect x="{left + start * scale:.1f}" y="{y + 4}" width="{max(1.0, (end - start) * scale):.1f}"'
                     f' height="14" fill="#dde8f5"/>')
        for ev in (ev for ev in events if ev["session"] == r["session"]):
            x = left + ev["t"] * scale
            mark, colour = ("▲", "#186a2e") if ev["action"] == "pick" else ("▼", "#a05a00")
            title = f"{ev['t']:.2f} s {ev['action']} {ev['qty']} × {names.get(ev['gtin'], ev['gtin'])} " \
                    f"at {ev['slot']} ({ev['camera']}), confidence {ev['confidence']:.2f}"
            parts.append(f'<text x="{x - 5:.1f}" y="{y + 16}" fill="{colour}"><title>{_e(title)}</title>'
                         f'{mark}</text>')
    axis_y = 10 + len(receipts) * lane
    ticks = "".join(f'<text x="{left + s * scale:.1f}" y="{axis_y + 12}">{s:.0f} s</text>'
                    for s in range(0, int(duration) + 1, max(1, int(duration // 10) or 1)))
    return (f'<svg width="{width}" height="{axis_y + 20}" role="img" aria-label="event timeline">'
            + "".join(parts) + ticks + "</svg>")


def _events(events: Sequence[Mapping[str, Any]], names: Mapping[str, str]) -> str:
    if not events:
        return "<p>No basket events.</p>"
    rows = "".join(f"<tr><td class=n>{ev['t']:.2f}</td><td>{_e(ev['customer'])}</td><td>{_e(ev['action'])}</td>"
                   f"<td class=n>{ev['qty']}</td><td>{_e(names.get(ev['gtin'], ev['gtin']))}</td>"
                   f"<td>{_e(ev['slot'])}</td><td>{_e(ev['camera'])}</td><td class=n>{ev['confidence']:.2f}</td></tr>"
                   for ev in events)
    return ("<table><tr><th class=n>t (s)</th><th>customer</th><th>action</th><th class=n>qty</th><th>product</th>"
            "<th>slot</th><th>camera</th><th class=n>confidence</th></tr>" + rows + "</table>")


def _metrics(metrics: Mapping[str, Any] | None) -> str:
    if metrics is None:
        return "<p>Replayed without <code>--truth</code>: no scores.</p>"
    keys = ("receipt_accuracy", "event_f1", "charge_error_cents", "face_recall", "realtime_factor")
    rows = "".join(f"<tr><td>{k}</td><td class=n>{_e(metrics.get(k))}</td></tr>" for k in keys)
    details = metrics.get("details", {})
    found = []
    for what, key in (("missed", "missed"), ("spurious", "spurious")):
        for ev in details.get("events", {}).get(key, []):
            found.append(f"<li class=bad>{what}: {_e(ev)}</li>")
    for wrong in details.get("receipts", {}).get("wrong", []):
        found.append(f"<li class=bad>wrong receipt: {_e(wrong)}</li>")
    for camera, faces in details.get("faces", {}).items():
        if faces.get("total"):
            found.append(f"<li>{_e(camera)}: {faces['anonymized']} of {faces['total']} faces anonymized</li>")
    return "<table>" + rows + "</table>" + (f"<ul>{''.join(found)}</ul>" if found else "")


def _timings(stages: Mapping[str, Mapping[str, Any]], wall_seconds: float, recorded_seconds: float) -> str:
    rows = []
    for camera, report in sorted(stages.items()):
        for stage, t in report.get("stages", {}).items():
            rows.append(f"<tr><td>{_e(camera)}</td><td>{_e(stage)}</td><td class=n>{t.get('calls', 0)}</td>"
                        f"<td class=n>{t.get('ms_per_call', 0):.2f}</td>"
                        f"<td class=n>{t.get('seconds', 0):.2f}</td></tr>")
    rtf = realtime_factor(recorded_seconds, wall_seconds)
    return (f"<p>{recorded_seconds:.1f} s recorded (all cameras) replayed in {wall_seconds:.1f} s: "
            f"realtime factor {rtf:.2f}.</p><table><tr><th>camera</th><th>stage</th><th class=n>calls</th>"
            "<th class=n>ms per call</th><th class=n>seconds</th></tr>" + "".join(rows) + "</table>")


def render_report(*, scenario: str, store_id: str, currency: str, receipts: Sequence[Mapping[str, Any]],
                  events: Sequence[Mapping[str, Any]], names: Mapping[str, str], duration: float,
                  metrics: Mapping[str, Any] | None, stages: Mapping[str, Mapping[str, Any]],
                  wall_seconds: float, recorded_seconds: float) -> str:
    """The whole page. `receipts` and `events` are SPEC section 5's, `names` maps gtin -> product name."""
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>walkout replay: {_e(scenario)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>Replay of {_e(scenario)}</h1><p>Store <code>{_e(store_id)}</code>, {duration:.1f} s recorded. "
        "Times are seconds on the scenario clock.</p>"
        f"<h2>Receipts</h2>{_receipts(receipts, names, currency)}"
        f"<h2>Timeline</h2>{_timeline(receipts, events, names, duration)}"
        f"<h2>Basket events</h2>{_events(events, names)}"
        f"<h2>Scores</h2>{_metrics(metrics)}"
        f"<h2>Stage timings</h2>{_timings(stages, wall_seconds, recorded_seconds)}"
        "</body></html>\n"
    )
