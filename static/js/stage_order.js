// Settings → Pipelines: drag a stage by its handle to put the stages in a new order
// (SortableJS, vendored). Each row carries a hidden "order" input that belongs to the page's
// order form, so the form's values follow the rows; after a drop the form is posted through
// HTMX and the server's fresh list replaces the old one. The ↑/↓ buttons work without this.
(function () {
  "use strict";

  function lists(root) {
    var found = [];
    if (!root || !root.querySelectorAll) return found;
    if (root.matches && root.matches("[data-stage-sortable]")) found.push(root);
    root.querySelectorAll("[data-stage-sortable]").forEach(function (list) { found.push(list); });
    return found;
  }

  var ANIMATION_MS = 150;

  // Sortable moves rows with inline styles (through the CSSOM, which the policy allows). htmx
  // copies an old element's style attribute onto its replacement when it swaps in the new
  // list, which the policy refuses; so the leftovers go before the list is replaced.
  function clearInlineStyles(list) {
    if (list.hasAttribute("style")) list.removeAttribute("style");
    list.querySelectorAll("[style]").forEach(function (el) { el.removeAttribute("style"); });
  }

  function init(root) {
    if (!window.Sortable || !window.htmx) return;
    lists(root).forEach(function (list) {
      if (list.hasAttribute("data-sortable-ready")) return;
      list.setAttribute("data-sortable-ready", "");
      window.Sortable.create(list, {
        handle: "[data-drag-handle]",
        draggable: ".stage-row",
        animation: ANIMATION_MS,
        onEnd: function (event) {
          // After the drop animation, whose last step leaves the rows' styles behind.
          window.setTimeout(function () {
            clearInlineStyles(list);
            if (event.oldIndex === event.newIndex) return;
            var form = document.getElementById(list.getAttribute("data-order-form"));
            if (form) window.htmx.trigger(form, "stage-order-changed");
          }, ANIMATION_MS + 50);
        }
      });
    });
  }

  // htmx:load fires for the page once htmx starts and for every piece it swaps in later.
  document.addEventListener("htmx:load", function (event) { init(event.target); });
  document.addEventListener("DOMContentLoaded", function () { init(document.body); });
})();
