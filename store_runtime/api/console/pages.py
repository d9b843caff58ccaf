"""The console's pages as HTML: pure functions of what the runtime and the privacy office say (no
requests, no database), one a page. Routes and what each shows: `routes/operator.py`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from store_runtime.api.console.html import (
    Page,
    clock,
    csrf_field,
    day_clock,
    document,
    e,
    lines,
    money,
    post_button,
    product,
    table,
)
from store_runtime.api.console.timeline import timeline_svg
from store_runtime.baskets import ReviewView
from store_runtime.clips import console_clip_url
from store_runtime.outages import OUTAGE_REVIEW
from store_runtime.runtime import EntryView, ReceiptView, SessionEventView, SessionView

__all__ = ["CameraData", "Choice", "LiveData", "audit_check", "cameras_page", "erase_confirm_page",
           "erase_done_page", "live_page", "panel", "privacy_customer_page", "privacy_page", "receipts_page",
           "reviews_page", "session_page"]

SHOWN = 50  # at most this many rows a table: pages stay small however long the store is open


# --------------------------------------------------------------------------------------------
# Live store


@dataclass(frozen=True)
class LiveData:
    inside_count: int
    inside: Sequence[SessionView]  # newest entry first
    left: Sequence[ReceiptView]  # the last to leave first
    entries: Sequence[EntryView]  # newest first
    status: Mapping[str, Any] | None = None  # walkout run's cameras and store day
    cameras: Mapping[str, tuple[int, int]] = field(default_factory=dict)  # live view: camera -> (w, h)
    overlay: bool = False  # the live pictures can have tracks, slots and zones drawn


def _session_link(page: Page, session: str | None) -> str:
    if not session:
        return '<span class="muted">nobody</span>'
    return f'<a href="{e(page.base)}/sessions/{e(session)}"><code>{e(session)}</code></a>'


def _store_day(status: Mapping[str, Any]) -> str:
    day = (f"loop {e(max((c.get('loop', 1) for c in status.get('cameras', ())), default=1))} of the recordings "
           "(one long day)" if status.get("continuous") else f"store day {e(status.get('day'))}")
    return (f"<p>Scenario <b>{e(status.get('scenario'))}</b>, {day}, store clock "
            f"<b>{e(clock(status.get('store_t')))}</b> UTC; {e(status.get('events_applied'))} node events applied.</p>")


def panel(page: Page, data: LiveData) -> str:
    """The part of the live page that changes: fetched again whenever the store changes."""
    names, cur = page.names, page.currency
    parts = [_store_day(data.status)] if data.status is not None else []
    reviews = (f'<a href="{e(page.base)}/reviews">{page.open_reviews} open review'
               f'{"" if page.open_reviews == 1 else "s"}</a>' if page.open_reviews else "no open review")
    parts.append(f'<p class="summary"><b>{data.inside_count}</b> inside · {reviews}</p>')
    inside = [(_session_link(page, v.session), e(v.customer), e(v.party), e(clock(v.entered_t)), e(v.tracks),
               e(v.status), lines(v.lines, names, cur), f"<b>{money(v.total_cents, v.currency)}</b>",
               e(v.open_reviews)) for v in data.inside[:SHOWN]]
    more = f" (the newest {len(inside)})" if data.inside_count > len(inside) else ""
    parts.append(f'<h3>In the store ({data.inside_count}){more}</h3>' + table(
        ("session", "customer", "party", "entered", "people", "status", "basket", "total", "reviews"),
        inside, "nobody is in the store", cls="inside"))
    left = [(e(r.customer), _session_link(page, r.session), e(clock(r.exited_t)), lines(r.lines, names, cur),
             f"<b>{money(r.total_cents, r.currency)}</b>", e(r.status)) for r in data.left]
    parts.append("<h3>Just left</h3>" + table(("customer", "session", "left", "lines", "total", "status"), left,
                                               "nobody has left yet"))
    entries = [(e(clock(v.t)), e(v.gate), e(v.source), e(v.customer or ""),
                "admitted" if v.admitted else f"<b>refused</b>: {e(v.reason)}", e(v.detail))
               for v in data.entries]
    parts.append("<h3>Entry codes</h3>" + table(("time", "gate", "read by", "customer", "verdict", "detail"),
                                                 entries, "no code presented yet"))
    return "\n".join(parts)


def _pictures(page: Page, cameras: Mapping[str, tuple[int, int]], overlay: bool) -> str:
    query = "?overlay=1" if overlay else ""
    return "".join(
        f'<figure><img data-live="{e(page.base)}/live/{e(c)}.jpg{query}" src="{e(page.base)}/live/{e(c)}.jpg{query}" '
        f'width="{int(w)}" height="{int(h)}" alt="camera {e(c)}, faces blurred"><figcaption>{e(c)}</figcaption>'
        f"</figure>" for c, (w, h) in sorted(cameras.items()))


def live_page(page: Page, data: LiveData) -> str:
    pictures = _pictures(page, data.cameras, data.overlay)
    live = (f'<section class="live">{pictures}</section><p class="muted">Every face is blurred on the camera '
            f"node before the picture leaves it.</p>" if pictures else "")
    body = (f'{live}<div id="panel" data-panel="{e(page.base)}/panel" data-stream="{e(page.base)}/stream">'
            f"{panel(page, data)}</div>")
    return document(page, "Live store", body, active="")


# --------------------------------------------------------------------------------------------
# Reviews


@dataclass(frozen=True, slots=True)
class Choice:
    """A session an operator may give an event to."""

    session: str
    customer: str
    where: str  # inside | left


def _select(name: str, options: Sequence[tuple[str, str]], chosen: str | None, *, label: str) -> str:
    items = "".join(f'<option value="{e(v)}"{" selected" if v == chosen else ""}>{e(text)}</option>'
                    for v, text in options)
    return f'<label>{e(label)} <select name="{e(name)}">{items}</select></label>'


def _shopper_options(review: ReviewView, choices: Sequence[Choice]) -> list[tuple[str, str]]:
    known = {c.session: c for c in choices}
    ordered = [s for s in (review.session, *review.candidates) if s] + [c.session for c in choices]
    seen: list[str] = []
    for s in ordered:
        if s not in seen:
            seen.append(s)
    return [(s, f"{known[s].customer} · {s} ({known[s].where})" if s in known else s) for s in seen]


# What a blind camera may have missed of a visit (outages.py's `affects`), in words.
_MISSED = {"shelf": "picks and puts at its shelves", "entry": "the shopper's entry", "exit": "the shopper's exit"}


def _outage_text(review: ReviewView, flag: Mapping[str, Any] | None) -> str:
    """A camera_outage review: the camera, its window and what it may have missed (from the session's
    flag; without one, the camera and the outage's start, which is the review's time)."""
    camera = review.event.get("camera")
    if flag is None:
        return f"camera <b>{e(camera)}</b> could not see from <b>{e(clock(review.t))}</b>"
    start, end = flag.get("start_t"), flag.get("end_t")
    window = (f"from <b>{e(clock(start))}</b>, still going" if end is None else
              f"<b>{e(clock(start))}–{e(clock(end))}</b> ({float(end) - float(start):.1f} s)")
    missed = ", ".join(_MISSED.get(str(a), str(a)) for a in flag.get("affects") or ()) or "nothing it watches"
    return (f"camera <b>{e(flag.get('camera', camera))}</b> was <b>{e(flag.get('kind'))}</b> {window} while this "
            f'shopper was inside <span class="muted">(it may have missed: {e(missed)})</span>')


def _event_text(page: Page, review: ReviewView, outages: Mapping[str, Mapping[str, Any]] | None = None) -> str:
    ev = review.event
    if review.kind == OUTAGE_REVIEW:
        return _outage_text(review, (outages or {}).get(review.id))
    if not ev.get("action"):
        return f"a person (track {e(ev.get('track'))}) on camera {e(ev.get('camera'))}"
    confidence = ev.get("confidence")
    shown = "" if confidence is None else f", confidence <b>{float(confidence):.2f}</b>"
    where = f"slot {e(ev.get('slot'))}, camera {e(ev.get('camera'))}, track {e(ev.get('track'))}" \
        if review.kind != "dispute" else "on the receipt"
    return (f"<b>{e(ev.get('action'))} {e(ev.get('qty'))} × {product(page.names, ev.get('gtin'))}</b> "
            f'<span class="muted">({where}{shown})</span>')


def _clip(review: ReviewView) -> str:
    if not review.clip:  # none made, or not every customer it may show consented to review_clips
        return '<p class="clip empty">no clip</p>'
    # The console's path of the clip: a browser sends the login cookie (scoped to /operator), not a bearer.
    return (f'<video class="clip" controls muted preload="metadata" src="{e(console_clip_url(review.id))}" '
            f'width="320">the clip</video>')


def _review_actions(page: Page, review: ReviewView, choices: Sequence[Choice]) -> str:
    action = f"{page.base}/reviews/{review.id}/decision"
    note = '<label>note <input name="note" maxlength="500" placeholder="why, for the record"></label>'
    if review.kind == "dispute":
        return (post_button(page, action, "Accept: take it off and refund", fields={"decision": "accept"},
                            cls="primary")
                + post_button(page, action, "Reject the dispute", fields={"decision": "reject"}))
    products = sorted(page.names.items(), key=lambda item: item[1])
    if review.kind == OUTAGE_REVIEW:
        # The visit is the review's own (the runtime refuses another session); a product's quantity
        # may be set to 0: the camera may have missed it being put back.
        correct = (f'<form method="post" action="{e(action)}" class="change">{csrf_field(page)}'
                   f'<input type="hidden" name="decision" value="accept">'
                   f"{_select('gtin', [(g, n) for g, n in products], None, label='product')}"
                   f'<label>the basket holds <input name="qty" type="number" min="0" max="99" required></label>'
                   f"{note}<button type=\"submit\">Set this product's quantity</button></form>")
        return (post_button(page, action, "Accept the basket as the cameras saw it", fields={"decision": "accept"},
                            cls="primary")
                + post_button(page, action, "Reject: the outage did not concern this visit",
                              fields={"decision": "reject"}) + correct)
    shoppers = _shopper_options(review, choices)
    if review.kind == "anonymous":
        assign = (f'<form method="post" action="{e(action)}" class="change">{csrf_field(page)}'
                  f'<input type="hidden" name="decision" value="accept">'
                  f"{_select('session', shoppers, review.session, label='one of the party of')}{note}"
                  f"<button type=\"submit\">Assign to this shopper</button></form>" if shoppers else "")
        return (assign + post_button(page, action, "Acknowledge (nobody's)", fields={"decision": "accept"})
                + post_button(page, action, "Discard", fields={"decision": "reject"}))
    ev = review.event
    confirm = (post_button(page, action, "Confirm", fields={"decision": "accept"}, cls="primary")
               if review.session else "")
    change = (f'<form method="post" action="{e(action)}" class="change">{csrf_field(page)}'
              f'<input type="hidden" name="decision" value="accept">'
              f"{_select('gtin', [(g, n) for g, n in products], ev.get('gtin'), label='product')}"
              f'<label>quantity <input name="qty" type="number" min="1" max="99" value="{e(ev.get("qty") or 1)}">'
              f"</label>{_select('session', shoppers, review.session, label='shopper') if shoppers else ''}"
              f"{note}<button type=\"submit\">Accept as changed</button></form>")
    discard = post_button(page, action, "Discard (nobody took it)", fields={"decision": "reject"})
    return confirm + discard + change


_KIND = {"shelf": "Uncertain shelf event", "anonymous": "Person without a code", "dispute": "Dispute",
         OUTAGE_REVIEW: "Camera outage during a visit"}


def _review_card(page: Page, review: ReviewView, choices: Sequence[Choice],
                 outages: Mapping[str, Mapping[str, Any]]) -> str:
    believed = (f"{e(review.customer)} · {_session_link(page, review.session)}" if review.session
                else '<span class="muted">nobody could be told</span>')
    reasons = "".join(f"<li>{e(r)}</li>" for r in review.reasons)
    return (f'<article class="review" id="review-{e(review.id)}" data-review="{e(review.id)}">'
            f"<h3>{e(_KIND.get(review.kind, review.kind))} · {e(clock(review.t))} "
            f'<code class="muted">{e(review.id)}</code></h3>'
            f'<div class="cols"><dl><dt>the system believed</dt><dd>{believed}</dd>'
            f"<dt>{'what happened' if review.kind == OUTAGE_REVIEW else 'what was seen'}</dt>"
            f"<dd>{_event_text(page, review, outages)}</dd>"
            f"<dt>why a person is asked</dt><dd><ul>{reasons}</ul></dd></dl>{_clip(review)}</div>"
            f'<div class="actions">{_review_actions(page, review, choices)}</div></article>')


def reviews_page(page: Page, reviews: Sequence[ReviewView], choices: Sequence[Choice], *,
                 outages: Mapping[str, Mapping[str, Any]] | None = None, flash: str | None = None,
                 error: str | None = None) -> str:
    """The open reviews as cards; `outages`: camera_outage review id -> its session's outage flag
    (`SessionView.camera_outages`), for the camera's window and what it may have missed."""
    cards = "".join(_review_card(page, r, choices, outages or {}) for r in reviews[:SHOWN])
    more = (f'<p class="muted">The oldest {len(reviews)} of {page.open_reviews} open reviews; the next show once '
            f"these are decided.</p>" if page.open_reviews > len(reviews) else "")
    body = more + (cards or '<p class="empty">Nothing waits for a person.</p>')
    return document(page, f"Review queue ({page.open_reviews} open)", body, active="/reviews", flash=flash,
                    error=error)


# --------------------------------------------------------------------------------------------
# Receipts and a shopper's timeline


def _refunds(receipt: ReceiptView) -> str:
    if not receipt.refunds:
        return money(receipt.refunded_cents, receipt.currency)
    items = "".join(f"<li>{money(r.amount_cents, receipt.currency)} <span class=\"muted\">{e(r.state)}</span></li>"
                    for r in receipt.refunds)
    return f"<ul>{items}</ul>"


def _disputes(page: Page, disputes: Sequence[ReviewView]) -> str:
    if not disputes:
        return ""
    items = "".join(f'<li><a href="{e(page.base)}/reviews#review-{e(d.id)}">{e(d.event.get("qty"))} × '
                    f"{product(page.names, d.event.get('gtin'))}</a>: <b>{e(d.status)}</b> "
                    f'<span class="muted">"{e(d.reasons[0] if d.reasons else "")}"'
                    f"{' by ' + e(d.decided_by) if d.decided_by else ''}</span></li>" for d in disputes)
    return f'<ul class="disputes">{items}</ul>'


def _dispute_form(page: Page, receipt: ReceiptView) -> str:
    if receipt.status != "charged" or not receipt.lines:
        return ""
    options = [(line.gtin, f"{line.qty} × {page.names.get(line.gtin, line.gtin)}") for line in receipt.lines]
    return (f'<details><summary>Open a dispute</summary><form method="post" action="{e(page.base)}/disputes" '
            f'class="change">{csrf_field(page)}<input type="hidden" name="session" value="{e(receipt.session)}">'
            f"{_select('gtin', options, None, label='line')}"
            f'<label>quantity <input name="qty" type="number" min="1" max="99" value="1"></label>'
            f'<label>what the customer says <input name="reason" maxlength="300" required></label>'
            f'<button type="submit">Open the dispute</button></form></details>')


def receipts_page(page: Page, receipts: Sequence[ReceiptView], disputes: Mapping[str, Sequence[ReviewView]], *,
                  query: str = "", flash: str | None = None, error: str | None = None) -> str:
    search = (f'<form method="get" action="{e(page.base)}/receipts" class="search"><label>customer or session '
              f'<input name="q" value="{e(query)}" maxlength="64"></label><button type="submit">Find</button>'
              f"</form>")
    rows = [(e(r.customer), _session_link(page, r.session), e(clock(r.exited_t)),
             lines(r.lines, page.names, r.currency), f"<b>{money(r.total_cents, r.currency)}</b>",
             f'<span class="status-{e(r.status)}">{e(r.status)}</span>', money(r.charged_cents, r.currency),
             _refunds(r), _disputes(page, disputes.get(r.session, ())) + _dispute_form(page, r))
            for r in receipts[:SHOWN]]
    what = f"for {query!r}" if query else f"the last {SHOWN} to leave"
    body = search + f'<p class="muted">Receipts {e(what)}, the last to leave first.</p>' + table(
        ("customer", "session", "left", "lines", "total", "status", "charged", "refunded", "disputes"), rows,
        "no receipt" + (f" for {query!r}" if query else " yet"), cls="receipts")
    return document(page, "Receipts", body, active="/receipts", flash=flash, error=error)


_SOURCE = {"camera": "camera", "review": "a person's review", "dispute": "accepted dispute",
           "receipt": "receipt line (events removed by retention)"}


def session_page(page: Page, view: SessionView, receipt: ReceiptView | None, events: Sequence[SessionEventView],
                 reviews: Sequence[ReviewView], *, now: float) -> str:
    cur = view.currency
    facts = (f"<dl class=\"facts\"><dt>customer</dt><dd>{e(view.customer)}</dd><dt>party</dt><dd>{e(view.party)}</dd>"
             f"<dt>entered</dt><dd>{e(day_clock(view.entered_t))} at {e(view.gate)}</dd>"
             f"<dt>left</dt><dd>{e(day_clock(view.exited_t)) or 'still inside'}</dd>"
             f"<dt>status</dt><dd>{e(view.status)}</dd><dt>basket</dt><dd>{lines(view.lines, page.names, cur)}</dd>"
             f"<dt>total</dt><dd><b>{money(view.total_cents, cur)}</b></dd>")
    if receipt is not None:
        facts += (f"<dt>charged</dt><dd>{money(receipt.charged_cents, cur)}</dd>"
                  f"<dt>refunded</dt><dd>{_refunds(receipt)}</dd>")
    facts += "</dl>"
    svg = timeline_svg(view, receipt, events, reviews, page.names, now=now)
    rows = [(e(str(i)), e(clock(ev.t)), e(ev.action), product(page.names, ev.gtin), e(ev.qty),
             money(ev.unit_cents, cur), e(ev.slot or ""), e(ev.camera or ""),
             "" if ev.confidence is None else e(f"{ev.confidence:.2f}"), e(_SOURCE.get(ev.source, ev.source)))
            for i, ev in enumerate(events, 1)]
    flags = {str(f["review"]): f for f in view.camera_outages if f.get("review")}
    review_rows = [(e(clock(r.t)), e(_KIND.get(r.kind, r.kind)), _event_text(page, r, flags), e(r.status),
                    e(r.decided_by or ""), e(r.note or "")) for r in reviews]
    charges = []
    if receipt is not None:
        charges = [(e(clock(c.t)), e(c.kind), money(c.amount_cents, cur), e(c.state), e(c.decline_reason or ""))
                   for c in receipt.charges]
    body = (facts + f'<figure class="timeline">{svg}<figcaption>Entry, each take and put, reviews, exit and '
            "charges on the store clock.</figcaption></figure>"
            + "<h3>Takes and puts</h3>" + table(("#", "time", "action", "product", "qty", "unit", "slot", "camera",
                                                 "confidence", "from"), rows, "nothing taken")
            + "<h3>Reviews</h3>" + table(("time", "kind", "what", "state", "decided by", "note"), review_rows,
                                         "no review concerned this shopper")
            + "<h3>Charges</h3>" + table(("time", "kind", "amount", "state", "decline"), charges, "no charge"))
    return document(page, f"Shopper {view.customer} · session {view.session}", body, active="/receipts")


# --------------------------------------------------------------------------------------------
# Cameras


@dataclass(frozen=True)
class CameraData:
    configured: Mapping[str, Mapping[str, Any]]  # camera -> {role, size, fps}
    health: Sequence[Mapping[str, Any]] | None  # StoreRuntime.camera_health(), where the runtime has it
    status: Mapping[str, Any] | None  # walkout run's nodes: frames read, through the node, dropped
    cameras: Mapping[str, tuple[int, int]] = field(default_factory=dict)  # live view
    overlay: bool = False
    slot_maps: bool = False


def _ago(t: Any, now: float) -> str:
    return "never" if t is None else f"{clock(t)} ({max(0.0, now - float(t)):.0f} s ago)"


def cameras_page(page: Page, data: CameraData, *, now: float) -> str:
    parts = []
    health = {str(h.get("camera")): h for h in data.health or ()}
    nodes = {str(c.get("camera")): c for c in (data.status or {}).get("cameras", ())}
    rows = []
    for camera, spec in sorted(data.configured.items()):
        h, n = health.get(camera, {}), nodes.get(camera, {})
        read, done = n.get("frames_read"), n.get("frames_processed")
        through = f"{100 * done / read:.0f} %" if read and done is not None else ""
        outages = h.get("outages") or []
        last_outage = ""
        if outages:
            o = outages[-1]
            last_outage = (f"{e(o.get('kind'))} {e(clock(o.get('start_t')))}–{e(clock(o.get('end_t')) or 'now')}"
                           f" ({len(outages)} in all)")
        state = h.get("state") or n.get("state") or "unknown"
        lag = h.get("lag_s")
        rows.append((f"<b>{e(camera)}</b>", e(spec.get("role")), e(spec.get("fps")),
                     f'<span class="state-{e(state)}">{e(state)}</span>',
                     e(_ago(h.get("last_event_t"), now)) if h else "", "" if lag is None else e(f"{float(lag):.1f} s"),
                     e(h.get("reconnects", "")), last_outage, e(read if read is not None else ""),
                     e(through), e(n.get("frames_dropped", "")), e(n.get("error") or "")))
    parts.append(table(("camera", "role", "fps", "state", "last event", "lag", "reconnects", "last outage",
                        "frames read", "through the node", "dropped", "error"), rows, "no camera configured"))
    notes = []
    if data.health is None:
        notes.append("This server's runtime reports no camera health (state, lag, reconnects) yet.")
    if data.status is None:
        notes.append("No camera node runs in this process (walkout serve): frame counts come from walkout run.")
    parts.extend(f'<p class="muted">{e(n)}</p>' for n in notes)
    figures = []
    for camera, (w, h) in sorted(data.cameras.items()):
        query = "?overlay=1" if data.overlay else ""
        slot_map = (f'<img class="slots" src="{e(page.base)}/slots/{e(camera)}.svg" alt="slot map of {e(camera)}">'
                    if data.slot_maps and data.configured.get(camera, {}).get("role") == "shelf" else "")
        figures.append(f'<figure><img data-live="{e(page.base)}/live/{e(camera)}.jpg{query}" '
                       f'src="{e(page.base)}/live/{e(camera)}.jpg{query}" width="{int(w)}" height="{int(h)}" '
                       f'alt="camera {e(camera)}, faces blurred">{slot_map}<figcaption>{e(camera)}</figcaption>'
                       f"</figure>")
    if figures:
        parts.append(f'<h3>Live view</h3><section class="live">{"".join(figures)}</section>')
    return document(page, "Cameras", "".join(parts), active="/cameras")


# --------------------------------------------------------------------------------------------
# Privacy


def audit_check(check: Mapping[str, Any]) -> str:
    if check.get("ok"):
        return (f'<p class="ok" role="status">The audit log verifies: {e(check.get("rows"))} rows, head '
                f"<code>{e(check.get('head'))}</code> (write it down elsewhere: deleting the newest rows leaves a "
                "shorter chain that still verifies).</p>")
    return (f'<p class="error" role="alert">The audit log is broken at row {e(check.get("broken_at"))}: '
            f"{e(check.get('problem'))}</p>")


def privacy_page(page: Page, retention: Mapping[str, Any], audit_rows: Sequence[Mapping[str, Any]], *,
                 check: Mapping[str, Any] | None = None, flash: str | None = None, error: str | None = None) -> str:
    lookup = (f'<form method="get" action="{e(page.base)}/privacy/customer" class="search">'
              f'<label>customer id <input name="customer" maxlength="64" required placeholder="c-0001"></label>'
              f'<button type="submit">Open</button></form>')
    cut = retention.get("cutoffs", {})
    would = [(e(k.replace("_", " ")), e(v)) for k, v in retention.get("would_remove", {}).items()]
    last = retention.get("last_purge")
    last_text = ("never run on this database" if last is None else
                 f"{e(day_clock(last['t']))} by {e(last['by'])}: removed "
                 + (", ".join(f"{e(v)} {e(k.replace('_', ' '))}" for k, v in last["removed"].items() if v)
                    or "nothing") + f", {e(last.get('video_files', 0))} video files")
    retention_html = (f"<h3>Retention</h3><p>Last purge: {last_text}.</p>"
                      f"<p>The next purge removes video recorded before {e(day_clock(cut.get('video')))}, tracking "
                      f"data before {e(day_clock(cut.get('tracking')))} and receipts before "
                      f"{e(day_clock(cut.get('receipts')))}:</p>"
                      + table(("what", "rows"), would, "nothing")
                      + post_button(page, f"{page.base}/privacy/purge", "Run the purge now"))
    verify = (audit_check(check) if check is not None else "") + (
        f'<p><a class="button" href="{e(page.base)}/privacy?verify=1">Verify the audit log\'s hash chain</a></p>')
    rows = [(e(r["seq"]), e(day_clock(r["t"])), e(r["actor"]), e(r["op"]), e(r["customer"] or ""),
             f"<code>{e(str(r['sha256'])[:16])}…</code>") for r in audit_rows]
    audit_html = "<h3>Audit log</h3>" + verify + table(("#", "time", "who", "operation", "customer", "sha256"),
                                                       rows, "the audit log is empty")
    return document(page, "Privacy", lookup + retention_html + audit_html, active="/privacy", flash=flash,
                    error=error)


def privacy_customer_page(page: Page, consents: Mapping[str, Any], receipts: Sequence[ReceiptView], *,
                          flash: str | None = None) -> str:
    customer = str(consents.get("customer"))
    purposes = [(e(p), "required" if s.get("required") else "optional", f'<b class="consent-{e(s.get("state"))}">'
                 f"{e(s.get('state'))}</b>", e(s.get("notice_version") or ""), e(s.get("method") or ""),
                 e(day_clock(s.get("given_t"))), e(day_clock(s.get("withdrawn_t"))))
                for p, s in consents.get("purposes", {}).items()]
    history = [(e(h.get("purpose")), e(h.get("notice_version")), e(h.get("method")), e(day_clock(h.get("given_t"))),
                e(day_clock(h.get("withdrawn_t"))), e(h.get("withdrawn_method") or ""), e(h.get("recorded_by")))
               for h in consents.get("history", ())]
    base = f"{page.base}/privacy/customers/{customer}"
    actions = (post_button(page, f"{base}/export", "Download the access export (JSON)", cls="primary")
               + f'<a class="button danger" href="{e(base)}/erase">Erase this customer…</a>')
    sessions = [(_session_link(page, r.session), e(day_clock(r.entered_t)), e(r.status),
                 money(r.total_cents, r.currency)) for r in receipts]
    body = (f'<div class="actions">{actions}</div><h3>Consents</h3>'
            + table(("purpose", "", "state", "notice", "method", "given", "withdrawn"), purposes, "no consent")
            + "<h3>Consent records</h3>"
            + table(("purpose", "notice", "method", "given", "withdrawn", "withdrawn by", "recorded by"), history,
                    "no consent record on file")
            + "<h3>Visits</h3>" + table(("session", "entered", "status", "total"), sessions, "no visit on file"))
    return document(page, f"Customer {customer}", body, active="/privacy", flash=flash)


def erase_confirm_page(page: Page, customer: str, *, error: str | None = None) -> str:
    body = (f"<p>Erasing <b>{e(customer)}</b> stops tracking them now (a visit still open is closed and its basket "
            "so far charged), withdraws every consent, and removes everything but what the law keeps: receipts "
            "and payment records (detached from tracking data), consent records with their withdrawal, and "
            "the audit rows. Their entry codes are refused from then on. This cannot be undone.</p>"
            f'<form method="post" action="{e(page.base)}/privacy/customers/{e(customer)}/erase" class="change">'
            f"{csrf_field(page)}<label>type the customer id to confirm <input name=\"confirm\" maxlength=\"64\" "
            f'required autocomplete="off"></label><button type="submit" class="danger">Erase {e(customer)}</button>'
            f'</form><p><a href="{e(page.base)}/privacy/customers/{e(customer)}">Back, erase nothing</a></p>')
    return document(page, f"Erase customer {customer}?", body, active="/privacy", error=error)


def erase_done_page(page: Page, result: Mapping[str, Any]) -> str:
    removed = [(e(k.replace("_", " ")), e(v)) for k, v in result.get("removed", {}).items() if v]
    kept = [(e(k.get("what")), e(k.get("why")), e(k.get("until"))) for k in result.get("kept", ())]
    closed = result.get("sessions_closed") or []
    body = ((f"<p>Visits closed and charged: {', '.join(e(s) for s in closed)}.</p>" if closed else "")
            + "<h3>Removed</h3>" + table(("what", "rows"), removed, "nothing was left to remove")
            + "<h3>Kept, and why</h3>" + table(("what", "why", "until"), kept, "nothing kept"))
    return document(page, f"Customer {result.get('customer')} erased", body, active="/privacy",
                    flash=f"{result.get('customer')} is erased; the erasure is in the audit log.")
