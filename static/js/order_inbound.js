// Settings → Orders inbound: "Copy" buttons for the URL, the signing secret and the examples.
// <button data-copy="element-id" hidden> copies that element's value (an input) or its text;
// the buttons stay hidden without JavaScript, where selecting the text does the same.
(function () {
  "use strict";

  function textOf(target) {
    return "value" in target && typeof target.value === "string" ? target.value : target.textContent;
  }

  function fallbackCopy(text) {
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.className = "visually-hidden";
    document.body.appendChild(area);
    area.select();
    var done = false;
    try { done = document.execCommand("copy"); } catch (error) { done = false; }
    area.remove();
    return done ? Promise.resolve() : Promise.reject(new Error("copy refused"));
  }

  function copy(text) {
    if (navigator.clipboard && window.isSecureContext) return navigator.clipboard.writeText(text);
    return fallbackCopy(text);
  }

  function toast(level, text) {
    if (typeof window.crmToast === "function") window.crmToast(level, text);
  }

  function enable(root) {
    if (!root || !root.querySelectorAll) return;
    root.querySelectorAll("button[data-copy][hidden]").forEach(function (button) {
      button.hidden = false;
    });
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("button[data-copy]");
    if (!button) return;
    var target = document.getElementById(button.getAttribute("data-copy"));
    if (!target) return;
    copy(textOf(target)).then(
      function () { toast("success", "Copied to the clipboard."); },
      function () {
        if (target.select) target.select();
        toast("error", "Your browser did not allow copying: the text is selected, press Ctrl+C.");
      }
    );
  });

  document.addEventListener("DOMContentLoaded", function () { enable(document.body); });
  // The signing secret arrives in a swapped fragment after "Show signing secret".
  document.addEventListener("htmx:load", function (event) { enable(event.target); });
})();
