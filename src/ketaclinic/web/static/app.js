// ketaclinic: small progressive enhancements; every page works without this file.
(function () {
  "use strict";
  var LAST = "kc-last-form", REFUSED = "kc-refused-form", FRESH_MS = 120000;

  function session() { try { return window.sessionStorage; } catch (e) { return null; } }

  function visible(form) {
    return Array.prototype.filter.call(form.elements, function (el) {
      return el.name && el.type !== "hidden" && el.type !== "password" && el.type !== "submit" &&
        el.type !== "button" && el.type !== "file";
    });
  }

  // What the user typed, kept for this tab until the server answers (never passwords).
  function remember(form) {
    var s = session(); if (!s) { return; }
    var values = {};
    visible(form).forEach(function (el) {
      if (el.type === "checkbox") { values[el.name] = el.checked; }
      else if (el.type === "radio") { if (el.checked) { values[el.name] = el.value; } }
      else { values[el.name] = el.value; }
    });
    try {
      s.setItem(LAST, JSON.stringify({ page: location.pathname + location.search,
        action: form.getAttribute("action") || location.pathname, values: values, at: Date.now() }));
    } catch (e) { /* storage full or off: the plain error page stays */ }
  }

  // On the plain error page after a refused form: go back to the form with the reason.
  function backToForm() {
    var page = document.getElementById("error-page"), s = session();
    if (!page || !s || page.dataset.form !== "refused") { return false; }
    var last; try { last = JSON.parse(s.getItem(LAST) || "null"); } catch (e) { last = null; }
    if (!last || Date.now() - last.at > FRESH_MS) { return false; }
    s.removeItem(LAST);
    last.error = page.dataset.message || "";
    s.setItem(REFUSED, JSON.stringify(last));
    location.replace(last.page);
    return true;
  }

  function fieldFor(form, message) {
    var m = /^\s*([\w.]+)\s*:/.exec(message || ""), name = m ? m[1].split(".").pop() : "";
    return name ? form.querySelector("[name='" + name.replace(/'/g, "") + "']") : null;
  }

  // On the form's page: put the typed values back and the reason beside the field.
  function restoreRefused() {
    var s = session(); if (!s) { return; }
    var saved; try { saved = JSON.parse(s.getItem(REFUSED) || "null"); } catch (e) { saved = null; }
    if (!saved || saved.page !== location.pathname + location.search) { return; }
    s.removeItem(REFUSED);
    var form = Array.prototype.find.call(document.querySelectorAll("form[method=post]"), function (f) {
      return (f.getAttribute("action") || location.pathname) === saved.action;
    });
    if (!form) { return; }
    visible(form).forEach(function (el) {
      if (!(el.name in saved.values)) { return; }
      var v = saved.values[el.name];
      if (el.type === "checkbox") { el.checked = !!v; }
      else if (el.type === "radio") { el.checked = (el.value === v); }
      else { el.value = v; }
    });
    var field = fieldFor(form, saved.error), note = document.createElement("p");
    note.className = "alert error field-error";
    note.id = "refused-" + Math.random().toString(36).slice(2, 8);
    note.setAttribute("role", "alert");
    note.textContent = "Not saved: " + saved.error;
    if (field && field.type !== "radio") {
      var box = field.closest("div, fieldset, label") || field;
      box.parentNode.insertBefore(note, box.nextSibling);
      field.setAttribute("aria-invalid", "true");
      field.setAttribute("aria-describedby", note.id);
      field.focus();
    } else {
      form.insertBefore(note, form.firstChild);
      note.tabIndex = -1; note.focus();
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    if (backToForm()) { return; }
    restoreRefused();
    Array.prototype.forEach.call(document.querySelectorAll("a.js-back"), function (link) {
      link.addEventListener("click", function (event) {
        if (history.length > 1) { event.preventDefault(); history.back(); }
      });
    });
    // Guard against double submission of a form (the server is idempotent as well).
    Array.prototype.forEach.call(document.querySelectorAll("form[method=post]"), function (form) {
      form.addEventListener("submit", function () {
        remember(form);
        Array.prototype.forEach.call(form.querySelectorAll("button[type=submit]"), function (b) {
          setTimeout(function () { b.disabled = true; }, 0);
        });
      });
    });
    // A searchable code list fills its description field (data-fill="<id>") when empty.
    Array.prototype.forEach.call(document.querySelectorAll("input[list][data-fill]"), function (input) {
      input.addEventListener("change", function () {
        var target = document.getElementById(input.dataset.fill), list = input.list;
        if (!target || !list || target.value) { return; }
        var option = Array.prototype.find.call(list.options, function (o) {
          return o.value.toUpperCase() === input.value.trim().toUpperCase();
        });
        if (option) { target.value = option.textContent.replace(option.value, "").trim(); }
      });
    });
    // A form that asks before leaving with unsaved edits (data-warn-unsaved).
    Array.prototype.forEach.call(document.querySelectorAll("form[data-warn-unsaved]"), function (form) {
      var dirty = false;
      form.addEventListener("input", function () { dirty = true; });
      form.addEventListener("change", function () { dirty = true; });
      form.addEventListener("submit", function () { dirty = false; });
      window.addEventListener("beforeunload", function (event) {
        if (dirty) { event.preventDefault(); event.returnValue = ""; }
      });
    });
  });
}());
