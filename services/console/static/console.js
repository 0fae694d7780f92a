// The incident page refreshes its live part every few seconds and counts
// the report deadline down; without JavaScript it is still complete.
(function () {
  "use strict";
  var ticking = null;
  function countdown() {
    if (ticking) clearInterval(ticking);
    var due = document.getElementById("report-due");
    var out = document.getElementById("countdown");
    if (!due || !out || !due.dataset.seconds) return;
    var left = parseInt(due.dataset.seconds, 10);
    var started = Date.now();
    ticking = setInterval(function () {
      var s = left - Math.round((Date.now() - started) / 1000);
      var a = Math.abs(s), h = Math.floor(a / 3600), m = Math.floor((a % 3600) / 60);
      var text = h > 0 ? h + " h " + String(m).padStart(2, "0") + " min" : m > 0 ? m + " min" : a + " s";
      out.textContent = s < 0 ? "-" + text : text;
    }, 1000);
  }
  var lastUpdate = new Date();
  // Says so when the live part could not be updated, and since when.
  function notice(kind) {
    var out = document.getElementById("freshness");
    if (!out) return;
    if (!kind) { out.textContent = ""; return; }
    var hhmm = String(lastUpdate.getHours()).padStart(2, "0") + ":" + String(lastUpdate.getMinutes()).padStart(2, "0");
    out.textContent = kind === "signedOut" ? out.dataset.signedOut : out.dataset.stale.replace("{time}", hhmm);
  }
  function refresh() {
    var live = document.getElementById("live");
    if (!live || !live.dataset.refresh) return;
    var every = parseInt(live.dataset.refresh, 10) * 1000;
    setInterval(function () {
      if (document.activeElement && live.contains(document.activeElement) && document.activeElement.tagName !== "BODY") return;
      fetch(window.location.href, { credentials: "same-origin", redirect: "manual" })
        .then(function (r) {
          if (r.type === "opaqueredirect" || r.redirected) { notice("signedOut"); return null; }
          if (!r.ok) { notice("stale"); return null; }
          return r.text();
        })
        .then(function (html) {
          if (!html) return;
          var next = new DOMParser().parseFromString(html, "text/html").getElementById("live");
          if (!next) { notice("signedOut"); return; }
          live.innerHTML = next.innerHTML;
          lastUpdate = new Date();
          notice(null);
          countdown();
        })
        .catch(function () { notice("stale"); });
    }, every);
  }
  countdown();
  refresh();
})();
