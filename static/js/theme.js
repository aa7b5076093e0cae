// Settings → Customize: picking a theme card repaints the page at once; the form's HTMX
// POST saves the choice, and the server's answer (data-saved-theme) has the last word.
(function () {
  "use strict";
  var root = document.documentElement;

  function themeInput(target) {
    return target && target.matches && target.matches('#theme-form input[name="theme"]');
  }

  document.addEventListener("change", function (event) {
    if (themeInput(event.target)) root.setAttribute("data-theme", event.target.value);
  });

  // htmx sets detail.elt to the element an event fires on (the swap target for
  // beforeSwap); the element that sent the request is requestConfig.elt.
  function isRefusal(event) {
    var config = event.detail.requestConfig;
    var sender = (config && config.elt) || event.detail.elt;
    return sender && sender.id === "theme-form" && event.detail.xhr.status === 400;
  }

  // htmx leaves 4xx answers unswapped; this one carries the error to show in place.
  document.addEventListener("htmx:beforeSwap", function (event) {
    if (isRefusal(event)) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });

  // After a save (or a refusal) show the theme that is really stored.
  document.addEventListener("htmx:afterSwap", function () {
    var status = document.getElementById("theme-status");
    var saved = status && status.getAttribute("data-saved-theme");
    if (!saved) return;
    root.setAttribute("data-theme", saved);
    var radio = document.querySelector('#theme-form input[name="theme"][value="' + saved + '"]');
    if (radio && !radio.checked) radio.checked = true;
  });
})();
