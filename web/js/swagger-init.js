// Starts Swagger UI on /docs (web/docs.html) over /openapi.json. A separate
// classic script because the page's CSP (script-src 'self') forbids inline
// scripts; it runs after swagger-ui-bundle.js and the standalone preset, which
// define the globals SwaggerUIBundle and SwaggerUIStandalonePreset.
// Configured like FastAPI's /docs: the plain layout (no URL bar to load other
// documents) and deep links to operations.
(function () {
  "use strict";
  document.body.style.margin = "0";
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    layout: "BaseLayout",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    plugins: [SwaggerUIBundle.plugins.DownloadUrl],
    displayRequestDuration: true,
    showExtensions: true,
    showCommonExtensions: true,
    // Served offline: never send the document to the public validator, and
    // never take another document's URL from the query string.
    validatorUrl: null,
    queryConfigEnabled: false,
  });
})();
