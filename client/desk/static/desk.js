// Docket Desk: the live parts.  No inline script anywhere (the CSP forbids it); this
// file only refreshes server-rendered fragments and posts the acknowledge forms.
"use strict";
(function () {
  var csrf = document.body.getAttribute("data-csrf") || "";

  function refresh(el) {
    var url = el.getAttribute("data-live");
    return fetch(url, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (text) {
        if (text === null) { return; }
        var doc = new DOMParser().parseFromString(text, "text/html");
        var same = el.id ? doc.getElementById(el.id) : null;
        el.innerHTML = same ? same.innerHTML : doc.body.innerHTML;
        el.setAttribute("data-refreshed", String(Date.now()));
      })
      .catch(function () { /* the next event tries again */ });
  }

  function refreshAll() {
    document.querySelectorAll("[data-live]").forEach(refresh);
  }

  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-async")) { return; }
    ev.preventDefault();
    var button = form.querySelector("button");
    if (button) { button.disabled = true; }
    fetch(form.action, {
      method: "POST",
      body: new FormData(form),
      credentials: "same-origin",
      headers: { "X-Docket-CSRF": csrf },
    }).then(function () { refreshAll(); });
  });

  if (window.EventSource) {
    var source = new EventSource("/events");
    source.addEventListener("change", refreshAll);
    // A change published between this page's rendering and the stream's (re)connection
    // would be missed: refresh once whenever the stream opens.
    source.addEventListener("open", refreshAll);
  }
})();
