// ketaclinic chair forms: keep a draft of what was typed on this tablet, submit in the
// background, and say plainly whether it was saved. Pages work without this file.
(function () {
  "use strict";
  var PREFIX = "kc-draft:";
  var SAVED = "kc-saved:";
  var RETRY_MS = 5000;

  function store() {
    try { return window.localStorage; } catch (e) { return null; }
  }

  function keyOf(form) {
    return PREFIX + (form.dataset.scope || location.pathname) + ":" + form.dataset.draft;
  }

  function fields(form) {
    return Array.prototype.filter.call(form.elements, function (el) {
      return el.name && el.name !== "csrf_token" && el.name !== "version" && el.type !== "password" &&
        el.type !== "submit" && el.type !== "button" && !el.dataset.nodraft;
    });
  }

  function saveDraft(form) {
    var s = store(); if (!s) { return; }
    var data = {};
    fields(form).forEach(function (el) {
      data[el.name] = (el.type === "checkbox" || el.type === "radio") ? el.checked : el.value;
    });
    try { s.setItem(keyOf(form), JSON.stringify({ at: Date.now(), data: data })); } catch (e) { /* full */ }
  }

  function restoreDraft(form) {
    var s = store(); if (!s) { return false; }
    var raw = s.getItem(keyOf(form)); if (!raw) { return false; }
    var draft;
    try { draft = JSON.parse(raw); } catch (e) { s.removeItem(keyOf(form)); return false; }
    fields(form).forEach(function (el) {
      if (!(el.name in draft.data)) { return; }
      if (el.type === "checkbox" || el.type === "radio") { el.checked = !!draft.data[el.name]; }
      else { el.value = draft.data[el.name]; }
    });
    return true;
  }

  function clearDraft(form) {
    var s = store(); if (s) { s.removeItem(keyOf(form)); }
  }

  function status(form, text, kind) {
    var el = form.querySelector(".save-status");
    if (!el) {
      el = document.createElement("p");
      el.className = "save-status";
      el.setAttribute("role", "status");
      el.setAttribute("aria-live", "polite");
      form.appendChild(el);
    }
    el.textContent = text;
    el.className = "save-status " + kind;
  }

  function enable(form) {
    Array.prototype.forEach.call(form.querySelectorAll("button[type=submit]"), function (b) {
      setTimeout(function () { b.disabled = false; }, 10);
    });
  }

  function messageFrom(html, code) {
    try {
      var doc = new DOMParser().parseFromString(html, "text/html");
      var alert = doc.querySelector("[role=alert]");
      if (alert) { return alert.textContent.trim(); }
    } catch (e) { /* fall through */ }
    return "the server answered " + code;
  }

  // A refusal (e.g. discharge) lists the rules that fired in the section the server rendered:
  // show the same list under the form, and open what the server opened (the leaving form).
  function showFindings(form, html) {
    var section = form.closest("section[id]");
    if (!section) { return; }
    try {
      var doc = new DOMParser().parseFromString(html, "text/html");
      var theirs = doc.getElementById(section.id);
      if (!theirs) { return; }
      var list = theirs.querySelector("ul.findings");
      var el = form.querySelector(".save-status");
      if (list && el) {
        var copy = document.importNode(list, true);
        copy.classList.add("refusal-findings");
        el.appendChild(copy);
      }
      Array.prototype.forEach.call(theirs.querySelectorAll("details[open][id]"), function (d) {
        var mine = document.getElementById(d.id);
        if (mine) { mine.open = true; }
      });
    } catch (e) { /* the message alone is enough */ }
  }

  // --- the lock screen: idle → locked, not logged out; drafts stay ------------------------
  var locked = false;

  function unlockForm(csrf) {
    var box = document.createElement("section");
    box.id = "lock-screen";
    box.className = "card lock-screen";
    box.setAttribute("role", "dialog");
    box.setAttribute("aria-modal", "true");
    box.setAttribute("aria-labelledby", "lock-h");
    box.innerHTML = '<h1 id="lock-h">Screen locked</h1>' +
      '<p>Nothing you typed is lost: it is kept on this tablet and comes back after you unlock.</p>' +
      '<form id="lock-form"><label for="lock-secret">PIN or password</label>' +
      '<input id="lock-secret" type="password" autocomplete="current-password" required maxlength="256">' +
      '<button type="submit">Unlock</button><p class="lock-status" role="alert"></p></form>';
    var form = box.querySelector("form");
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var secret = box.querySelector("#lock-secret").value;
      var out = box.querySelector(".lock-status");
      out.textContent = "Checking…";
      fetch((document.documentElement.dataset.root || "") + "/api/session/unlock", {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
        body: JSON.stringify({ secret: secret })
      }).then(function (res) {
        if (res.ok) { location.reload(); return null; }
        return res.json().then(function (body) {
          if (body.logged_out) { location.assign((document.documentElement.dataset.root || "") + "/login?msg=expired"); return; }
          out.textContent = body.detail || "not accepted";
          box.querySelector("#lock-secret").value = "";
        });
      }).catch(function () { out.textContent = "No connection: try again"; });
    });
    return box;
  }

  function lock() {
    if (locked) { return; }
    var cfg = document.getElementById("lock-config");
    if (!cfg) { return; }
    locked = true;
    var csrf = cfg.dataset.csrf;
    // No patient data stays on screen or in the page: drafts are already in localStorage.
    var main = document.getElementById("main") || document.body;
    main.innerHTML = "";
    document.title = "Locked";
    document.body.classList.add("locked");
    main.appendChild(unlockForm(csrf));
    var input = document.getElementById("lock-secret");
    if (input) { input.focus(); }
  }

  function watchIdle() {
    var cfg = document.getElementById("lock-config");
    if (!cfg) { return; }
    var idleMs = parseFloat(cfg.dataset.idleMinutes || "15") * 60000;
    var timer = null;
    function reset() {
      if (locked) { return; }
      if (timer) { clearTimeout(timer); }
      timer = setTimeout(lock, idleMs);
    }
    ["input", "keydown", "pointerdown", "touchstart", "scroll"].forEach(function (name) {
      document.addEventListener(name, reset, { passive: true });
    });
    reset();
  }

  function lockedAnswer(res) {
    if (res.status === 401) { return true; }
    try { return res.redirected && /^\/(unlock|login)$/.test(new URL(res.url).pathname); }
    catch (e) { return false; }
  }

  function send(form) {
    var body = new URLSearchParams(new FormData(form));
    status(form, "Saving…", "pending");
    fetch(form.action, {
      method: "POST", body: body, credentials: "same-origin", redirect: "follow",
      headers: { "Content-Type": "application/x-www-form-urlencoded", "X-Requested-With": "fetch" }
    }).then(function (res) {
      if (lockedAnswer(res)) {  // the server locked the session: keep the draft, lock
        enable(form);
        form.dataset.pending = "";
        lock();
        return null;
      }
      if (res.ok) {
        clearDraft(form);
        form.dataset.pending = "";
        try { sessionStorage.setItem(SAVED + form.dataset.draft, new Date().toLocaleTimeString()); } catch (e) { /* ignore */ }
        status(form, "saved", "ok");
        location.assign(res.url.split("#")[0] + "#" + (form.id || ""));
        if (res.url.split("#")[0] === location.href.split("#")[0]) { location.reload(); }
        return null;
      }
      return res.text().then(function (html) {
        form.dataset.pending = "";
        enable(form);
        var conflict = res.status === 409 ? " — reload the page to see the current record" : "";
        status(form, "NOT saved: " + messageFrom(html, res.status) + conflict +
          " (your entry is kept on this tablet)", "error");
        showFindings(form, html);
      });
    }).catch(function () {
      enable(form);
      form.dataset.pending = "1";
      status(form, "NOT saved — will retry / copy kept on this tablet", "error");
      setTimeout(function () { if (form.dataset.pending === "1") { send(form); } }, RETRY_MS);
    });
  }

  function setup(form) {
    if (restoreDraft(form)) {
      status(form, "Restored what you typed earlier on this tablet (not yet saved)", "warn");
    }
    try {
      var when = sessionStorage.getItem(SAVED + form.dataset.draft);
      if (when) { status(form, "saved at " + when, "ok"); sessionStorage.removeItem(SAVED + form.dataset.draft); }
    } catch (e) { /* ignore */ }
    form.addEventListener("input", function () { saveDraft(form); });
    form.addEventListener("change", function () { saveDraft(form); });
    form.addEventListener("submit", function (event) {
      if (!window.fetch || !window.URLSearchParams) { return; }
      event.preventDefault();
      saveDraft(form);
      send(form);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    Array.prototype.forEach.call(document.querySelectorAll("form[data-draft]"), setup);
    watchIdle();
    window.addEventListener("online", function () {
      Array.prototype.forEach.call(document.querySelectorAll("form[data-pending='1']"), send);
    });
  });
}());
