// The console's one script (served from /operator/static: the CSP allows no inline script).
"use strict";

// Live pictures: the next one is asked for once the last has arrived, never a pile of requests
// behind a slow machine.
for (const img of document.querySelectorAll("img[data-live]")) {
  const url = img.dataset.live;
  const next = (wait) => setTimeout(() => {
    img.src = url + (url.includes("?") ? "&" : "?") + "n=" + Date.now();
  }, wait);
  img.addEventListener("load", () => next(300));
  img.addEventListener("error", () => next(2000));
}

// The live store: the server says when the store changed (server-sent events: a change counter),
// and only then is the panel read again; one read at a time, the last change never missed.
const panel = document.getElementById("panel");
if (panel && panel.dataset.stream && window.EventSource) {
  let seen = null, busy = false, again = false, updates = 0;
  const refresh = async () => {
    if (busy) { again = true; return; }
    busy = true;
    try {
      const r = await fetch(panel.dataset.panel, {credentials: "same-origin", cache: "no-store"});
      if (r.status === 401 || r.status === 403) { location.reload(); return; }
      if (r.ok) {
        panel.innerHTML = await r.text();
        panel.dataset.updates = String(++updates);
      }
    } catch (e) { /* the server is restarting: the stream says when it is back */ }
    busy = false;
    if (again) { again = false; refresh(); }
  };
  const stream = new EventSource(panel.dataset.stream);
  stream.addEventListener("open", () => { document.body.dataset.stream = "open"; });
  stream.addEventListener("change", (event) => {
    const version = event.data;
    if (seen !== null && version !== seen) refresh();
    seen = version;
  });
  stream.addEventListener("error", () => {
    document.body.dataset.stream = "reconnecting";
    // A closed stream (401: logged out, or a new store day's database without this credential)
    // is not retried by the browser: reload, which shows the login form when that is the reason.
    if (stream.readyState === EventSource.CLOSED) setTimeout(() => location.reload(), 2000);
  });
}
