// aarlab dashboard: live updates without a reload, and small conveniences. No framework, no
// inline script (the Content-Security-Policy forbids it): behaviour hangs off data attributes.
(function () {
  "use strict";

  // Task pickers submit on change.
  document.querySelectorAll("select[data-autosubmit]").forEach(function (sel) {
    sel.addEventListener("change", function () { sel.form.submit(); });
  });

  var body = document.body;
  var url = body.dataset.live;
  if (!url) return;
  var every = Math.max(500, Number(body.dataset.liveEvery) || 3000);
  var version = body.dataset.liveVersion || "";
  var statusEl = document.getElementById("live-status");

  function setStatus(text) { if (statusEl) statusEl.textContent = " · " + text; }
  function fmt(v) { return v === null || v === undefined ? "–" : Number(v).toFixed(3); }
  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text !== undefined) e.textContent = text;  // text only: researcher-written titles stay text
    if (cls) e.className = cls;
    return e;
  }
  function link(href, text) { var a = el("a", text); a.href = href; return a; }

  function renderList(id, items, build) {
    var list = document.getElementById(id);
    if (!list) return;
    var before = new Set(Array.from(list.querySelectorAll("li[data-id]")).map(function (li) { return li.dataset.id; }));
    var seeded = list.dataset.seeded === "1";
    list.replaceChildren();
    items.forEach(function (item) {
      var li = el("li");
      li.dataset.id = String(item.id);
      build(item).forEach(function (child) { li.append(child); });
      if (seeded && !before.has(String(item.id))) li.className = "fresh";
      list.append(li);
    });
    if (!items.length) list.append(el("li", "none yet", "muted"));
    list.dataset.seeded = "1";
  }

  function apply(data) {
    Object.keys(data.counts || {}).forEach(function (k) {
      var c = document.querySelector('[data-count="' + k + '"]');
      if (c) c.textContent = data.counts[k];
    });
    var best = document.querySelector("[data-best]");
    if (best) best.textContent = fmt(data.best_released_pgr);
    renderList("recent-findings", data.findings || [], function (f) {
      return [link("/forum/" + f.id, f.title), document.createTextNode(" "),
              el("span", f.kind + " · " + f.author + " · " + String(f.created_at).replace("T", " ").slice(0, 19), "muted")];
    });
    renderList("recent-submissions", data.submissions || [], function (x) {
      var parts = [link("/submissions/" + x.id, "#" + x.id),
                   document.createTextNode(" " + x.researcher + " · released " + fmt(x.released_pgr))];
      if (x.new_best) { parts.push(document.createTextNode(" ")); parts.push(el("span", "new best", "badge up")); }
      parts.push(document.createTextNode(" "));
      parts.push(el("span", x.method || "", "muted"));
      return parts;
    });
    refreshChart();
  }

  function refreshChart() {
    var fig = document.getElementById("progress");
    if (!fig || !fig.dataset.src) return;
    fetch(fig.dataset.src, { cache: "no-store", credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (!html) return;
        // The fragment is our own server-rendered, escaped SVG; take only its <figure>.
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.getElementById("progress");
        var now = document.getElementById("progress");
        if (fresh && now) now.replaceWith(document.importNode(fresh, true));
      })
      .catch(function () {});
  }

  function tick() {
    var sep = url.indexOf("?") < 0 ? "?" : "&";
    fetch(url + sep + "since=" + encodeURIComponent(version),
          { headers: { Accept: "application/json" }, cache: "no-store", credentials: "same-origin" })
      .then(function (r) {
        if (!r.ok) { setStatus("live: server answered " + r.status); return null; }
        return r.json();
      })
      .then(function (data) {
        if (!data) return;
        if (data.changed && data.version !== version) { version = data.version; apply(data); }
        setStatus("live, checked " + new Date().toLocaleTimeString());
      })
      .catch(function () { setStatus("live: server unreachable, retrying"); })
      .then(function () { setTimeout(tick, every); });
  }
  setTimeout(tick, every);
})();
