"""The operator page as HTML: pure functions of what the runtime says, no requests, no database.

Every value is escaped where it is written (`_e`), whoever wrote it: customer ids come from the
shoppers' codes, notes and dispute reasons from people, product names from the catalog. The page
loads nothing from elsewhere (no CDN: nothing may be downloaded at run time); its one script and
style carry the response's CSP nonce. The script refreshes the live view's pictures and the panel
(`panel`, the part below the pictures); without scripts the page reloads itself every 5 s.
"""

from __future__ import annotations

import html
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from store_runtime.baskets import Line, ReviewView
from store_runtime.runtime import EntryView, ReceiptView, SessionView

__all__ = ["SHOWN", "PageData", "login_page", "operator_page", "panel"]

SHOWN = 50  # at most this many rows a table: the page stays small however long the store is open


@dataclass(frozen=True)
class PageData:
    store_id: str
    currency: str
    names: Mapping[str, str]  # gtin -> product name
    inside: Sequence[SessionView] = ()
    receipts: Sequence[ReceiptView] = ()  # sessions that left, newest first
    reviews: Sequence[ReviewView] = ()  # the open review queue
    entries: Sequence[EntryView] = ()  # codes presented, newest first
    cameras: Mapping[str, tuple[int, int]] = field(default_factory=dict)  # live view: camera -> (w, h)
    status: Mapping[str, Any] | None = None  # walkout run's cameras and store day
    operator: str = ""


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _clock(t: float | None) -> str:
    return "" if t is None else time.strftime("%H:%M:%S", time.gmtime(t))


def _money(cents: int, currency: str) -> str:
    sign = "-" if cents < 0 else ""
    whole, part = divmod(abs(int(cents)), 100)
    return f"{sign}{whole}.{part:02d} {_e(currency)}"


def _table(headers: Iterable[str], rows: Iterable[Iterable[str]], empty: str) -> str:
    """`rows` are cells already escaped."""
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    if not body:
        return f'<p class="empty">{_e(empty)}</p>'
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _lines(lines: Sequence[Line], names: Mapping[str, str], currency: str) -> str:
    if not lines:
        return '<span class="empty">empty</span>'
    items = "".join(f"<li>{line.qty} × {_e(names.get(line.gtin, line.gtin))} "
                    f"<span class=\"muted\">{_money(line.unit_cents, currency)}</span></li>" for line in lines)
    return f"<ul>{items}</ul>"


def _event(event: Mapping[str, Any], names: Mapping[str, str]) -> str:
    if not event.get("action"):
        return f"track {_e(event.get('track'))} on camera {_e(event.get('camera'))}"
    gtin = event.get("gtin") or ""
    confidence = event.get("confidence")
    shown = "" if confidence is None else f", confidence {float(confidence):.2f}"
    return (f"{_e(event.get('action'))} {_e(event.get('qty'))} × {_e(names.get(gtin, gtin))} "
            f"<span class=\"muted\">(slot {_e(event.get('slot'))}, camera {_e(event.get('camera'))}{_e(shown)})</span>")


def _cameras(status: Mapping[str, Any]) -> str:
    rows = [(_e(c.get("camera")), _e(c.get("state")), _e(c.get("loop")), _e(c.get("frames_read")),
             _e(c.get("frames_processed")), _e(c.get("frames_dropped")), _e(c.get("error") or ""))
            for c in status.get("cameras", ())]
    return _table(("camera", "state", "loop", "frames read", "through the node", "dropped (node behind)", "error"),
                  rows, "no camera nodes in this process")


def panel(data: PageData) -> str:
    """The part of the page that changes: store day, cameras, sessions, reviews, receipts, entries."""
    names, cur = data.names, data.currency
    parts = []
    if data.status is not None:
        s = data.status
        day = (f"loop {_e(max((c.get('loop', 1) for c in s.get('cameras', ())), default=1))} of the recordings "
               "(one long day)" if s.get("continuous") else f"store day {_e(s.get('day'))}")
        parts.append(f"<p>Scenario <b>{_e(s.get('scenario'))}</b>, {day}, store clock "
                     f"<b>{_e(_clock(s.get('store_t')))}</b> UTC; {_e(s.get('events_applied'))} node events applied."
                     "</p>")
        parts.append(f"<h2>Cameras</h2>{_cameras(s)}")
    inside = [(f"<code>{_e(v.session)}</code>", _e(v.customer), _e(v.party), _e(_clock(v.entered_t)), _e(v.tracks),
               _e(v.status), _lines(v.lines, names, cur), f"<b>{_money(v.total_cents, v.currency)}</b>",
               _e(v.open_reviews)) for v in data.inside[-SHOWN:]]
    parts.append(f"<h2>In the store ({len(data.inside)})</h2>" + _table(
        ("session", "customer", "party", "entered", "people", "status", "basket", "total", "reviews"),
        inside, "nobody is in the store"))
    reviews = [(_e(_clock(r.t)), _e(r.kind), _e(r.customer or "nobody known"), _event(r.event, names),
                "<br>".join(_e(reason) for reason in r.reasons), f"<code>{_e(r.id)}</code>")
               for r in data.reviews[:SHOWN]]
    parts.append(f"<h2>Review queue ({len(data.reviews)} open)</h2>" + _table(
        ("time", "kind", "believed customer", "what was seen", "why", "review"), reviews,
        "nothing waits for a person"))
    receipts = [(_e(r.customer), f"<code>{_e(r.session)}</code>", _e(_clock(r.entered_t)), _e(_clock(r.exited_t)),
                 _lines(r.lines, names, cur), f"<b>{_money(r.total_cents, r.currency)}</b>", _e(r.status),
                 _money(r.charged_cents - r.refunded_cents, r.currency)) for r in data.receipts[:SHOWN]]
    parts.append("<h2>Receipts</h2>" + _table(
        ("customer", "session", "entered", "left", "lines", "total", "status", "charged"), receipts,
        "nobody has left yet"))
    entries = [(_e(_clock(v.t)), _e(v.gate), _e(v.source), _e(v.customer or ""),
                "admitted" if v.admitted else f"<b>refused</b>: {_e(v.reason)}", _e(v.detail))
               for v in data.entries[:SHOWN]]
    parts.append("<h2>Entry codes</h2>" + _table(
        ("time", "gate", "read by", "customer", "verdict", "detail"), entries, "no code presented yet"))
    return "\n".join(parts)


_STYLE = """
body{font:15px/1.4 system-ui,sans-serif;margin:0 1.5em 2em;color:#1c1c1c}
header{display:flex;align-items:center;gap:1em;border-bottom:1px solid #ccc}
header h1{font-size:1.3em;flex:1}
h2{font-size:1.1em;margin:1.2em 0 .4em}
table{border-collapse:collapse;width:100%}
th,td{border-bottom:1px solid #e3e3e3;padding:.3em .5em;text-align:left;vertical-align:top}
th{font-weight:600;background:#f5f5f5}
ul{margin:0;padding-left:1.1em}
.muted,.empty{color:#777}
#live{display:flex;flex-wrap:wrap;gap:1em}
#live figure{margin:0}
#live img{max-width:100%;height:auto;background:#222;border-radius:4px}
form.login{max-width:28em;margin-top:2em}
form.login input{width:100%;padding:.4em;margin:.4em 0;font:inherit}
.error{color:#a00}
"""

# Pictures: the next one is asked for once the last has arrived (never a pile of requests behind a
# slow machine). Panel: replaced every 2 s with the server's escaped HTML; a 401 (logged out, or a
# new day's database without this credential) reloads the page, which then shows the login form.
_SCRIPT = """
for (const img of document.querySelectorAll('img[data-live]')) {
  const next = (wait) => setTimeout(() => { img.src = img.dataset.live + '?n=' + Date.now(); }, wait);
  img.addEventListener('load', () => next(300));
  img.addEventListener('error', () => next(2000));
}
async function refresh() {
  try {
    const r = await fetch('PANEL', {credentials: 'same-origin', cache: 'no-store'});
    if (r.status === 401 || r.status === 403) { location.reload(); return; }
    if (r.ok) document.getElementById('panel').innerHTML = await r.text();
  } catch (e) { /* the server is restarting or stopped: try again */ }
  setTimeout(refresh, 2000);
}
setTimeout(refresh, 2000);
"""


def _document(title: str, body: str, nonce: str, *, script: str = "", refresh: bool = False) -> str:
    reload = '<noscript><meta http-equiv="refresh" content="5"></noscript>' if refresh else ""
    scripted = f'<script nonce="{_e(nonce)}">{script}</script>' if script else ""
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{_e(title)}</title><style nonce=\"{_e(nonce)}\">{_STYLE}</style>{reload}</head>"
            f"<body>{body}{scripted}</body></html>")


def operator_page(data: PageData, *, nonce: str, base: str) -> str:
    """The whole page; `base` is where the operator routes are mounted (e.g. /operator)."""
    pictures = "".join(
        f'<figure><img data-live="{_e(base)}/live/{_e(c)}.jpg" src="{_e(base)}/live/{_e(c)}.jpg" '
        f'width="{int(w)}" height="{int(h)}" alt="camera {_e(c)}, faces blurred"><figcaption>{_e(c)}</figcaption>'
        f"</figure>" for c, (w, h) in sorted(data.cameras.items()))
    live = (f'<h2>Live view <span class="muted">(every face blurred before it leaves the camera node)</span></h2>'
            f'<section id="live">{pictures}</section>' if pictures else "")
    body = (f"<header><h1>walkout · {_e(data.store_id)}</h1><span class=\"muted\">{_e(data.operator)}</span>"
            f'<form method="post" action="{_e(base)}/logout"><button type="submit">Log out</button></form></header>'
            f'{live}<div id="panel">{panel(data)}</div>'
            f'<p class="muted">The API: <a href="/docs">/docs</a> (bearer credentials; this page\'s cookie '
            f"is not one).</p>")
    return _document(f"walkout · {data.store_id}", body, nonce, script=_SCRIPT.replace("PANEL", f"{base}/panel"),
                     refresh=True)


def login_page(*, nonce: str, base: str, message: str | None = None) -> str:
    error = f'<p class="error">{_e(message)}</p>' if message else ""
    body = (f"<header><h1>walkout · operator</h1></header>"
            f'<form class="login" method="post" action="{_e(base)}/login">{error}'
            f'<label for="token">Operator credential</label>'
            f'<input id="token" name="token" type="password" autocomplete="current-password" required '
            f'maxlength="200" autofocus>'
            f'<button type="submit">Log in</button>'
            f'<p class="muted">An operator credential: the one <code>walkout run</code> printed, or one made by '
            f"<code>walkout credentials add --role operator</code>.</p></form>")
    return _document("walkout · operator login", body, nonce)
