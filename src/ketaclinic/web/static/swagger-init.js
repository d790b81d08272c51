// Starts the vendored Swagger UI on /api/docs (a file, not an inline script: the CSP forbids those).
window.addEventListener("DOMContentLoaded", function () {
  "use strict";
  window.ui = window.SwaggerUIBundle({
    url: (document.documentElement.dataset.root || "") + "/api/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [window.SwaggerUIBundle.presets.apis],
    layout: "BaseLayout"
  });
});
