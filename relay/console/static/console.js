// The console's one script, loaded from the relay itself (the CSP allows nothing else).
// It refreshes the element marked data-refresh every few seconds by fetching the same
// page and swapping that element's content: parsed by DOMParser, whose documents never
// run scripts; the server already escaped every sender-controlled text.
"use strict";

(function () {
  function refresh(live) {
    var seconds = parseInt(live.getAttribute("data-refresh"), 10);
    if (!seconds) {
      return;
    }
    window.setTimeout(function tick() {
      var busy = live.contains(document.activeElement) &&
        document.activeElement.matches("input, select, textarea");
      if (busy || document.hidden) {  // never pull the page from under the keyboard
        window.setTimeout(tick, seconds * 1000);
        return;
      }
      fetch(window.location.href, { credentials: "same-origin", cache: "no-store" })
        .then(function (answer) { return answer.text(); })
        .then(function (text) {
          var fresh = new DOMParser().parseFromString(text, "text/html").getElementById(live.id);
          if (fresh) {
            live.replaceChildren.apply(live, Array.from(fresh.childNodes));
            live.setAttribute("data-refreshed", String(Date.now()));
          }
        })
        .catch(function () { /* the next tick tries again */ })
        .finally(function () { window.setTimeout(tick, seconds * 1000); });
    }, seconds * 1000);
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-refresh]").forEach(refresh);
  });
})();
