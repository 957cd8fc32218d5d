// Reviewer pages: keyboard shortcuts, and live updates of a session's gallery.
// No build step; loaded with `defer` by templates/review/{session,capture}.html.
(function () {
  "use strict";

  var POLL_MS = 4000;

  function typing(event) {
    var t = event.target;
    return t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName));
  }

  function modified(event) {
    return event.ctrlKey || event.metaKey || event.altKey;
  }

  // --- one capture: a = approve, r = reject, n = note, j/→ next, k/← previous ---
  function capturePage() {
    var form = document.getElementById("review-form");
    document.addEventListener("keydown", function (event) {
      if (typing(event) || modified(event)) return;
      var link = null;
      if (event.key === "j" || event.key === "ArrowRight") link = document.getElementById("next-capture");
      if (event.key === "k" || event.key === "ArrowLeft") link = document.getElementById("prev-capture");
      if (link) { event.preventDefault(); window.location.assign(link.href); return; }
      if (!form) return;
      if (event.key === "n") { event.preventDefault(); form.querySelector("textarea").focus(); return; }
      var button = form.querySelector('button[data-key="' + event.key + '"]');
      if (button) { event.preventDefault(); form.requestSubmit(button); }
    });
  }

  // --- gallery: j/k/arrows move between cards, Enter opens (the link has focus) ---
  function galleryKeys(gallery) {
    document.addEventListener("keydown", function (event) {
      if (typing(event) || modified(event)) return;
      var step = { j: 1, ArrowRight: 1, k: -1, ArrowLeft: -1 }[event.key];
      if (!step) return;
      var links = Array.prototype.slice.call(gallery.querySelectorAll(".capture-card .filename"));
      if (!links.length) return;
      var i = links.indexOf(document.activeElement);
      var next = i < 0 ? 0 : Math.min(links.length - 1, Math.max(0, i + step));
      event.preventDefault();
      links[next].focus();
      links[next].closest(".capture-card").scrollIntoView({ block: "nearest" });
    });
  }

  // --- gallery: poll for captures that arrived since the page was rendered ---
  function galleryPoll(gallery) {
    if (gallery.dataset.poll !== "on") return;
    var status = document.getElementById("live-status");
    var lastId = parseInt(gallery.dataset.lastId, 10) || 0;
    var waiting = 0;  // arrivals not shown (not on the first page of the newest-first view)
    var busy = false;

    function url() {
      var u = new URL(gallery.dataset.sinceUrl, window.location.href);
      u.searchParams.set("after_id", String(lastId));
      return u.toString();
    }

    function notice(text) {
      status.textContent = text + " ";
      var a = document.createElement("a");
      a.href = gallery.dataset.firstUrl;
      a.textContent = "Show newest";
      status.appendChild(a);
    }

    function tick() {
      if (busy || document.hidden) return;
      busy = true;
      fetch(url(), { headers: { Accept: "application/json" }, credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : Promise.reject(new Error(r.status)); })
        .then(function (data) {
          lastId = data.last_id;
          gallery.dataset.lastId = String(lastId);
          if (!data.count) return;
          if (gallery.dataset.mode === "prepend" && !data.more) {
            // The server escaped every value of these cards (Jinja autoescape).
            var tpl = document.createElement("template");
            tpl.innerHTML = data.html;
            Array.prototype.forEach.call(tpl.content.querySelectorAll(".capture-card"), function (c) {
              c.classList.add("is-new");
            });
            gallery.insertBefore(tpl.content, gallery.firstChild);
            var empty = document.querySelector(".empty");
            if (empty) empty.remove();
            status.textContent = data.count + " new capture" + (data.count === 1 ? "" : "s") + " arrived.";
          } else {
            waiting += data.count;
            notice(waiting + (data.more ? "+" : "") + " new capture" + (waiting === 1 ? "" : "s") + " since this page loaded.");
          }
        })
        .catch(function () { /* a missed poll is retried on the next tick */ })
        .then(function () { busy = false; });
    }

    window.setInterval(tick, POLL_MS);
    document.addEventListener("visibilitychange", function () { if (!document.hidden) tick(); });
  }

  var gallery = document.getElementById("gallery");
  if (gallery) {
    galleryKeys(gallery);
    galleryPoll(gallery);
  } else {
    capturePage();
  }
})();
