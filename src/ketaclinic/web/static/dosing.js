// ketaclinic dose page: re-check the dose as values are typed (the "Check" button does the
// same without JavaScript). The server decides; this only shows its answer early.
"use strict";
(() => {
  const FIELDS = ["route", "mg_per_kg", "weight_basis", "height_cm", "infusion_min",
    "concentration_mg_per_ml", "phase", "session_number", "dose_mg", "weight_reentry"];

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v !== null && v !== undefined) node.setAttribute(k, v);
    }
    for (const c of children) {
      if (c === null || c === undefined) continue;
      node.append(typeof c === "string" ? document.createTextNode(c) : c);
    }
    return node;
  }

  function fact(label, value) {
    return el("div", {}, el("dt", {}, label), el("dd", {}, value));
  }

  function overrides(form) {
    const kept = {};
    for (const input of form.querySelectorAll("[name^='override-']")) kept[input.name] = input.value;
    return kept;
  }

  function render(form, data, kept) {
    const box = form.querySelector("#dose-result");
    const d = data.display || {};
    const dl = el("dl", { class: "facts" }, fact("Dose", d.dose));
    if (d.mg_per_kg) dl.append(fact(d.mg_per_kg_actual ? `mg/kg (${data.dose_weight.basis} weight)` : "mg/kg", d.mg_per_kg));
    if (d.mg_per_kg_actual) dl.append(fact("mg/kg of actual weight", d.mg_per_kg_actual));
    if (d.weight) dl.append(fact(`Weight (${data.weight_source}${data.weight_measured_on ? ", " + data.weight_measured_on : ""})`, d.weight));
    if (d.dose_weight) dl.append(fact(`Dose weight (${data.dose_weight.basis})`, d.dose_weight));
    if (d.rate_mg_per_h) dl.append(fact("Rate", d.rate_mg_per_h));
    if (d.rate_ml_per_h) dl.append(fact("Pump rate", d.rate_ml_per_h));
    if (d.volume_ml) dl.append(fact("Volume", d.volume_ml));
    if (data.devices) dl.append(fact("Devices", `${data.devices} × 28 mg`));
    dl.append(fact("Rule set", data.rule_set));
    const summary = el("div", { class: "dose-summary", id: "dose-summary" }, el("h2", {}, "Result"), dl);
    if (data.dose_weight && data.dose_weight.evidence) {
      summary.append(el("p", { class: "muted evidence" }, el("strong", {}, "Weight basis evidence: "),
        data.dose_weight.evidence + " ", el("span", { class: "source" }, `(${data.dose_weight.source})`)));
    }
    for (const n of data.notes || []) summary.append(el("p", { class: "alert info" }, n));
    if ((data.titration || []).length) {
      summary.append(el("p", {}, "Titration from the previous dose: " +
        data.titration.map((t) => `${t.label} ${t.mg_per_kg} mg/kg`).join("; ")));
    }
    let status;
    if (data.blocked) {
      status = el("p", { class: "alert error", role: "alert", id: "dose-status" },
        "Hard stop: this dose cannot be saved by any role." + (data.reentry_required ? " Re-enter the value that is flagged." : ""));
    } else if ((data.soft_rules || []).length) {
      status = el("p", { class: "alert warn", id: "dose-status" }, "Soft limit: give a coded reason and a note for each warning to save.");
    } else {
      status = el("p", { class: "alert ok", id: "dose-status" }, "Within limits.");
    }
    const body = el("tbody");
    for (const f of data.checks || []) {
      body.append(el("tr", { class: `level-${f.level}` },
        el("td", {}, el("span", { class: `badge ${f.level}` }, f.level)), el("td", {}, f.rule),
        el("td", {}, f.message), el("td", { class: "source" }, f.source)));
    }
    const table = el("table", { class: "list checks" }, el("caption", {}, "Checks"),
      el("thead", {}, el("tr", {}, ...["Level", "Rule", "Finding", "Source"].map((h) => el("th", { scope: "col" }, h)))), body);
    const parts = [summary, status, table];
    for (const f of (data.checks || []).filter((c) => c.level === "soft")) {
      const codeName = `override-${f.rule}-code`, textName = `override-${f.rule}-text`;
      const select = el("select", { id: `ov-${f.rule}-code`, name: codeName }, el("option", { value: "" }, "Choose…"));
      for (const code of data.reason_codes || []) {
        const opt = el("option", { value: code }, code);
        if (kept[codeName] === code) opt.selected = true;
        select.append(opt);
      }
      const text = el("input", { id: `ov-${f.rule}-text`, name: textName, maxlength: "1000" });
      text.value = kept[textName] || "";
      parts.push(el("fieldset", { class: "override" }, el("legend", {}, `Override ${f.rule}: ${f.message}`),
        el("div", { class: "inline" },
          el("div", {}, el("label", { for: `ov-${f.rule}-code` }, "Reason code"), select),
          el("div", { class: "wide-field" }, el("label", { for: `ov-${f.rule}-text` }, "Why (free text)"), text))));
    }
    if (data.pk_query) {
      const pid = form.dataset.patient;
      parts.push(el("figure", { class: "pk" },
        el("img", { src: `/patients/${pid}/pk.svg?${data.pk_query}`, width: "600", height: "300",
          alt: `Predicted plasma concentration over time for ${d.dose}` }),
        el("figcaption", {}, "Predicted plasma curve: explains exposure; does not set doses.")));
    }
    box.replaceChildren(...parts);
    const save = form.querySelector("#save-dose");
    if (save) {
      save.disabled = !!data.blocked;
      save.title = data.blocked ? "A hard stop cannot be overridden" : "";
    }
  }

  function init(form) {
    const status = form.querySelector("#check-status");
    const csrf = form.querySelector("input[name=csrf_token]").value;
    let timer = null, seq = 0;
    async function check() {
      const body = {};
      for (const name of FIELDS) {
        const input = form.elements[name];
        if (input && input.value.trim() !== "") body[name] = input.value.trim();
      }
      const mine = ++seq;
      status.textContent = "Checking…";
      try {
        const response = await fetch(form.dataset.checkUrl, {
          method: "POST", credentials: "same-origin",
          headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
          body: JSON.stringify(body),
        });
        const data = await response.json();
        if (mine !== seq) return;
        if (response.ok) {
          render(form, data, overrides(form));
          status.textContent = "";
        } else {
          status.textContent = typeof data.detail === "string" ? data.detail : "Check failed: complete the fields.";
          const save = form.querySelector("#save-dose");
          if (save) save.disabled = true;
        }
      } catch (err) {
        if (mine === seq) status.textContent = "Could not reach the server; use the Check button.";
      }
    }
    form.addEventListener("input", (event) => {
      if (!FIELDS.includes(event.target.name)) return;
      clearTimeout(timer);
      timer = setTimeout(check, 350);
    });
    form.addEventListener("change", (event) => {
      if (event.target.tagName === "SELECT" && FIELDS.includes(event.target.name)) check();
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    const form = document.getElementById("dose-form");
    if (form) init(form);
  });
})();
