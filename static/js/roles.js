// Roles & Permissions: with HTMX every control saves as it changes, so the whole-form
// "Save changes" button (the no-JavaScript path) gives way to a short hint.
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    if (!window.htmx) return;
    document.querySelectorAll("[data-roles-nojs]").forEach(function (el) { el.hidden = true; });
    document.querySelectorAll(".instant-hint").forEach(function (el) { el.hidden = false; });
  });
})();
