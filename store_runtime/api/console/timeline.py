"""A shopper's visit as an SVG timeline: entry, each take and put (numbered as in the page's table),
reviews, exit and charges, on the store clock. Pure: values in, SVG text out, every text escaped.
SVG presentation attributes only (no style attribute: the console's CSP allows no inline style)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from store_runtime.api.console.html import clock, e
from store_runtime.baskets import ReviewView
from store_runtime.runtime import ReceiptView, SessionEventView, SessionView

__all__ = ["timeline_svg"]

WIDTH, HEIGHT, LEFT, RIGHT = 960, 190, 70, 30
ROWS = {"basket": 62, "reviews": 112, "money": 152}
_REVIEW_FILL = {"open": "#c62828", "accepted": "#2e7d32", "rejected": "#757575"}


def timeline_svg(view: SessionView, receipt: ReceiptView | None, events: Sequence[SessionEventView],
                 reviews: Sequence[ReviewView], names: Mapping[str, str], *, now: float) -> str:
    start = view.entered_t
    times = [start, view.exited_t or now, *(ev.t for ev in events), *(r.t for r in reviews)]
    times += [c.t for c in receipt.charges] if receipt is not None else []
    end = max(times)
    span = max(end - start, 1.0)

    def x(t: float) -> float:
        return LEFT + (min(max(t, start), end) - start) / span * (WIDTH - LEFT - RIGHT)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" '
           f'height="{HEIGHT}" role="img" aria-label="timeline of session {e(view.session)}" font-size="12" '
           f'font-family="system-ui, sans-serif">']
    for label, y in ROWS.items():
        out.append(f'<text x="4" y="{y + 4}" fill="#555">{e(label)}</text>'
                   f'<line x1="{LEFT}" y1="{y}" x2="{WIDTH - RIGHT}" y2="{y}" stroke="#ddd"/>')
    for i in range(5):  # the clock along the bottom
        t = start + span * i / 4
        out.append(f'<text x="{x(t):.1f}" y="{HEIGHT - 4}" fill="#777" text-anchor="middle">{e(clock(t))}</text>')
    out.append(_mark(x(start), "entry", "#1565c0", f"entered at {view.gate}, {clock(start)}"))
    if view.exited_t is not None:
        out.append(_mark(x(view.exited_t), "exit", "#1565c0", f"left at {clock(view.exited_t)}"))
    for i, ev in enumerate(events, 1):
        fill = "#2e7d32" if ev.action == "pick" else "#ef6c00"
        what = f"#{i} {clock(ev.t)} {ev.action} {ev.qty} × {names.get(ev.gtin, ev.gtin)} ({ev.source})"
        cx = x(ev.t)
        out.append(f'<g><title>{e(what)}</title><circle cx="{cx:.1f}" cy="{ROWS["basket"]}" r="7" fill="{fill}"/>'
                   f'<text x="{cx:.1f}" y="{ROWS["basket"] - 12}" text-anchor="middle" fill="#333">{i}</text></g>')
    for r in reviews:
        cx, y = x(r.t), ROWS["reviews"]
        what = f"{clock(r.t)} {r.kind} review, {r.status}" + (f" by {r.decided_by}" if r.decided_by else "")
        out.append(f'<g><title>{e(what)}</title><path d="M{cx:.1f} {y - 8} L{cx + 8:.1f} {y} L{cx:.1f} {y + 8} '
                   f'L{cx - 8:.1f} {y} Z" fill="{_REVIEW_FILL.get(r.status, "#555")}"/></g>')
    for c in receipt.charges if receipt is not None else ():
        cx, y = x(c.t), ROWS["money"]
        what = f"{clock(c.t)} {c.kind} charge {c.amount_cents / 100:.2f} {receipt.currency if receipt else ''}, " \
               f"{c.state}"
        fill = "#2e7d32" if c.state == "captured" else "#c62828"
        out.append(f'<g><title>{e(what)}</title><rect x="{cx - 7:.1f}" y="{y - 7}" width="14" height="14" rx="3" '
                   f'fill="{fill}"/></g>')
    for refund in receipt.refunds if receipt is not None else ():
        cx, y = x(refund.t), ROWS["money"]
        out.append(f'<g><title>{e(f"{clock(refund.t)} refund {refund.amount_cents / 100:.2f}, {refund.state}")}'
                   f'</title><rect x="{cx - 7:.1f}" y="{y - 7}" width="14" height="14" rx="3" fill="#6a1b9a"/></g>')
    out.append("</svg>")
    return "".join(out)


def _mark(x: float, label: str, colour: str, title: str) -> str:
    return (f'<g><title>{e(title)}</title><line x1="{x:.1f}" y1="22" x2="{x:.1f}" y2="{HEIGHT - 18}" '
            f'stroke="{colour}" stroke-width="2" stroke-dasharray="4 3"/>'
            f'<text x="{x:.1f}" y="16" text-anchor="middle" fill="{colour}">{e(label)}</text></g>')
