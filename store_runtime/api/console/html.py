"""The console's HTML building blocks: escaping, money and clock formats, tables, forms, the layout.

Every value is escaped where it is written (`e`), whoever wrote it: customer ids come from the
shoppers' codes, notes and dispute reasons from people, product names from the catalog. Pages load
nothing from elsewhere (nothing may be downloaded at run time) and carry no inline script or style:
the CSP allows the console's own /operator/static files only.
"""

from __future__ import annotations

import html
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from store_runtime.baskets import Line

__all__ = ["NAV", "Page", "clock", "csrf_field", "document", "e", "lines", "money", "post_button", "table"]

NAV = (("", "Live store"), ("/reviews", "Reviews"), ("/receipts", "Receipts"), ("/cameras", "Cameras"),
       ("/privacy", "Privacy"))


@dataclass(frozen=True, slots=True)
class Page:
    """What every page's frame shows: the store, who is logged in, the open reviews' count, and the
    CSRF token every form carries."""

    base: str
    store_id: str
    currency: str
    operator: str
    csrf: str
    open_reviews: int
    names: Mapping[str, str]  # gtin -> product name


def e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def clock(t: float | None) -> str:
    return "" if t is None else time.strftime("%H:%M:%S", time.gmtime(t))


def day_clock(t: float | None) -> str:
    return "" if t is None else time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t))


def money(cents: int, currency: str) -> str:
    sign = "-" if cents < 0 else ""
    whole, part = divmod(abs(int(cents)), 100)
    return f"{sign}{whole}.{part:02d} {e(currency)}"


def product(names: Mapping[str, str], gtin: str | None) -> str:
    return e(names.get(gtin or "", gtin or "?"))


def table(headers: Iterable[str], rows: Iterable[Iterable[str]], empty: str, *, cls: str = "") -> str:
    """`rows` are cells already escaped."""
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    if not body:
        return f'<p class="empty">{e(empty)}</p>'
    head = "".join(f"<th>{e(h)}</th>" for h in headers)
    klass = f' class="{e(cls)}"' if cls else ""
    return f"<table{klass}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def lines(items: Sequence[Line], names: Mapping[str, str], currency: str) -> str:
    if not items:
        return '<span class="empty">empty</span>'
    rows = "".join(f"<li>{line.qty} × {product(names, line.gtin)} "
                   f'<span class="muted">{money(line.unit_cents, currency)}</span></li>' for line in items)
    return f"<ul>{rows}</ul>"


def csrf_field(page: Page) -> str:
    return f'<input type="hidden" name="csrf" value="{e(page.csrf)}">'


def post_button(page: Page, action: str, label: str, *, fields: Mapping[str, str] | None = None,
                cls: str = "") -> str:
    """A one-click form: a button that POSTs `fields` (and the CSRF token) to `action`."""
    hidden = "".join(f'<input type="hidden" name="{e(k)}" value="{e(v)}">' for k, v in (fields or {}).items())
    klass = f' class="{e(cls)}"' if cls else ""
    return (f'<form method="post" action="{e(action)}" class="inline">{csrf_field(page)}{hidden}'
            f"<button type=\"submit\"{klass}>{e(label)}</button></form>")


def _nav(page: Page, active: str) -> str:
    items = []
    for path, label in NAV:
        count = f' <span class="badge">{page.open_reviews}</span>' if path == "/reviews" and page.open_reviews else ""
        here = ' aria-current="page"' if path == active else ""
        items.append(f'<a href="{e(page.base + path)}"{here}>{e(label)}{count}</a>')
    return "".join(items)


def _head(title: str, base: str) -> str:
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{e(title)}</title>"
            f'<link rel="icon" href="{e(base)}/static/favicon.svg" type="image/svg+xml">'
            f'<link rel="stylesheet" href="{e(base)}/static/console.css">'
            f'<script src="{e(base)}/static/console.js" defer></script></head>')


def document(page: Page, title: str, body: str, *, active: str, flash: str | None = None,
             error: str | None = None) -> str:
    """A whole console page: the header with the navigation, a message if any, then `body`."""
    notes = (f'<p class="flash" role="status">{e(flash)}</p>' if flash else "") + (
        f'<p class="error" role="alert">{e(error)}</p>' if error else "")
    header = (f'<header><h1>walkout · {e(page.store_id)}</h1><nav>{_nav(page, active)}</nav>'
              f'<span class="muted who">{e(page.operator)}</span>'
              f"{post_button(page, page.base + '/logout', 'Log out')}</header>")
    return (f"{_head(f'{title} · walkout · {page.store_id}', page.base)}<body>{header}<main>"
            f"<h2 class=\"title\">{e(title)}</h2>{notes}{body}</main></body></html>")


def login_document(*, base: str, message: str | None = None) -> str:
    error = f'<p class="error" role="alert">{e(message)}</p>' if message else ""
    body = (f"<header><h1>walkout · operator</h1></header><main>"
            f'<form class="login" method="post" action="{e(base)}/login">{error}'
            f'<label for="token">Operator credential</label>'
            f'<input id="token" name="token" type="password" autocomplete="current-password" required '
            f'maxlength="200" autofocus>'
            f'<button type="submit">Log in</button>'
            f'<p class="muted">An operator credential: the one <code>walkout run</code> printed, or one made by '
            f"<code>walkout credentials add --role operator</code>.</p></form></main>")
    return f"{_head('walkout · operator login', base)}<body>{body}</body></html>"
