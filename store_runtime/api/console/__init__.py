"""The operator console: server-rendered pages for the people at the store's back office.

- `auth.py`: the login cookie, the CSRF token of every form, the audit row of every action.
- `html.py`: escaping and the page frame; `pages.py`: one function a page; `timeline.py`: a
  shopper's visit as SVG.
- `static/`: the one stylesheet and the one script (the CSP allows nothing inline, nothing elsewhere).

The routes are in `store_runtime/api/routes/operator.py`.
"""
