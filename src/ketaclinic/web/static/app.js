// ketaclinic: small progressive enhancements; every page works without this file.
document.addEventListener("DOMContentLoaded", () => {
  for (const link of document.querySelectorAll("a.js-back")) {
    link.addEventListener("click", (event) => {
      if (history.length > 1) { event.preventDefault(); history.back(); }
    });
  }
  // Guard against double submission of a form (the server is idempotent as well).
  for (const form of document.querySelectorAll("form[method=post]")) {
    form.addEventListener("submit", () => {
      for (const b of form.querySelectorAll("button[type=submit]")) {
        setTimeout(() => { b.disabled = true; }, 0);
      }
    });
  }
});
