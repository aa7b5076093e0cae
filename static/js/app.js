// Small shell helpers: toasts from HX-Trigger events, auto-dismiss, closing menus.
(function () {
  "use strict";
  function showToast(level, text) {
    var box = document.getElementById("toasts");
    if (!box) return;
    var el = document.createElement("div");
    el.className = "toast toast-" + (level || "info");
    el.textContent = text;
    box.appendChild(el);
    setTimeout(function () { el.remove(); }, 5000);
  }
  window.crmToast = showToast;
  document.addEventListener("toast", function (event) {
    var items = (event.detail && event.detail.value) || event.detail || [];
    if (!Array.isArray(items)) items = [items];
    items.forEach(function (t) { if (t && t.text) showToast(t.level, t.text); });
  });
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("#toasts .toast").forEach(function (el) {
      setTimeout(function () { el.remove(); }, 6000);
    });
  });
  // Close open <details> menus on outside click or Escape.
  document.addEventListener("click", function (event) {
    document.querySelectorAll("details[open].org-switcher, details[open].user-menu").forEach(function (d) {
      if (!d.contains(event.target)) d.removeAttribute("open");
    });
  });
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape") {
      document.querySelectorAll("details[open]").forEach(function (d) { d.removeAttribute("open"); });
    }
  });
})();
