// Shell helpers: toasts (Django messages and HX-Trigger "toast" events), menus that close
// on Escape or an outside click, and Ctrl/⌘+K to reach the global search from any page.
(function () {
  "use strict";

  var TOAST_MS = 6000;
  var isMac = /Mac|iPhone|iPad/.test(navigator.platform || navigator.userAgent || "");

  // Toasts ---------------------------------------------------------------------------
  function dismiss(toast) {
    if (toast && toast.parentNode) toast.parentNode.removeChild(toast);
  }

  // Errors stay until dismissed (they must be read); the rest leave after a while,
  // but not while the pointer or keyboard focus is on them.
  function scheduleDismiss(toast) {
    if (toast.classList.contains("toast-error")) return;
    var timer = null;
    function start() { timer = setTimeout(function () { dismiss(toast); }, TOAST_MS); }
    function stop() { clearTimeout(timer); }
    toast.addEventListener("mouseenter", stop);
    toast.addEventListener("mouseleave", start);
    toast.addEventListener("focusin", stop);
    toast.addEventListener("focusout", start);
    start();
  }

  function showToast(level, text) {
    var box = document.getElementById("toasts");
    var template = document.getElementById("toast-template");
    if (!box || !template || !text) return null;
    var toast = template.content.firstElementChild.cloneNode(true);
    toast.className = "toast toast-" + (level || "info");
    toast.querySelector(".toast-text").textContent = text;
    box.appendChild(toast);
    scheduleDismiss(toast);
    return toast;
  }
  window.crmToast = showToast;

  // crm.middleware.HtmxMessagesMiddleware sends HX-Trigger: {"toast": [{level, text}, ...]}.
  // htmx wraps a non-object value (our list) as event.detail.value; an object arrives as
  // event.detail itself, so accept both shapes.
  function toastsFrom(detail) {
    if (!detail) return [];
    var value = Object.prototype.hasOwnProperty.call(detail, "value") ? detail.value : detail;
    if (Array.isArray(value)) return value;
    return value && value.text ? [value] : [];
  }
  document.addEventListener("toast", function (event) {
    toastsFrom(event.detail).forEach(function (item) {
      if (item && item.text) showToast(item.level, item.text);
    });
  });

  // In DEBUG, django-htmx's helper replaces the whole page with any 400/403/404 answer to
  // an HTMX request. That suits Django's own error pages, not the answers our views send on
  // purpose: a form fragment re-rendered with its errors, or an error toast. Those are kept
  // from it here (window, capture phase: before its listener on document).
  window.addEventListener("htmx:beforeOnLoad", function (event) {
    var xhr = event.detail.xhr;
    if (!xhr || xhr.status < 400 || xhr.status >= 500) return;
    var isFullPage = /<html[\s>]/i.test(xhr.responseText || "");
    if (xhr.getResponseHeader("HX-Trigger") || !isFullPage) event.stopPropagation();
  }, true);

  document.addEventListener("click", function (event) {
    var close = event.target.closest && event.target.closest("[data-toast-close]");
    if (close) dismiss(close.closest("[data-toast]"));
  });

  // Menus (<details data-menu>) -----------------------------------------------------------
  function openMenus() {
    return document.querySelectorAll("details[data-menu][open]");
  }

  document.addEventListener("click", function (event) {
    openMenus().forEach(function (menu) {
      if (!menu.contains(event.target)) menu.removeAttribute("open");
    });
  });

  // Opening one menu closes the others, so two never overlap.
  document.addEventListener("toggle", function (event) {
    var opened = event.target;
    if (!opened.matches || !opened.matches("details[data-menu]") || !opened.open) return;
    openMenus().forEach(function (menu) {
      if (menu !== opened) menu.removeAttribute("open");
    });
  }, true);

  // Keyboard -----------------------------------------------------------------------------
  function focusSearch() {
    var search = document.getElementById("global-search");
    if (!search) return false;
    search.focus();
    search.select();
    return true;
  }

  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape") {
      var menus = openMenus();
      if (!menus.length) return;
      menus.forEach(function (menu) {
        var hadFocus = menu.contains(document.activeElement);
        menu.removeAttribute("open");
        if (hadFocus) menu.querySelector("summary").focus();
      });
      event.preventDefault();
      return;
    }
    var modifier = isMac ? event.metaKey : event.ctrlKey;
    if ((modifier || event.ctrlKey) && !event.altKey && !event.shiftKey &&
        (event.key === "k" || event.key === "K")) {
      if (focusSearch()) event.preventDefault();
    }
  });

  // A search box with nothing behind it yet must not submit the page to itself.
  document.addEventListener("submit", function (event) {
    var input = event.target.querySelector && event.target.querySelector("#global-search");
    if (input && input.getAttribute("aria-disabled") === "true") event.preventDefault();
  });

  // Behaviour that used to sit in on*="" attributes, which the Content-Security-Policy ----
  // refuses (as it refuses htmx's hx-on): delegated listeners read data-attributes instead.

  // <form data-confirm="Delete …?"> asks before it submits. Capture phase: before any other
  // submit listener (htmx's) sees the event.
  document.addEventListener("submit", function (event) {
    var question = event.target.getAttribute && event.target.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      event.preventDefault();
      event.stopImmediatePropagation();
    }
  }, true);

  // <input data-submit-on-change> submits its form as soon as it changes.
  document.addEventListener("change", function (event) {
    var input = event.target;
    if (!input.matches || !input.matches("[data-submit-on-change]") || !input.form) return;
    input.form.requestSubmit();
  });

  // The top-bar search appends its suggestions to its form (hx-swap="beforeend"): the
  // previous answer goes first, so only the latest one shows.
  document.addEventListener("htmx:beforeSwap", function (event) {
    var config = event.detail.requestConfig;
    var sender = config && config.elt;
    if (!sender || sender.id !== "global-search" || !sender.form) return;
    sender.form.querySelectorAll(".search-suggest").forEach(function (el) { el.remove(); });
  });

  // Values that CSS needs per element (a tag's colour, a score's share of the ring) come as
  // data-attributes; style="" attributes are refused by the policy, CSSOM from here is not.
  var CSS_VARIABLES = { "data-tag-color": "--tag", "data-score": "--score" };
  function applyCssVariables(root) {
    if (!root || !root.querySelectorAll) return;
    Object.keys(CSS_VARIABLES).forEach(function (attribute) {
      var apply = function (el) { el.style.setProperty(CSS_VARIABLES[attribute], el.getAttribute(attribute)); };
      if (root.matches && root.matches("[" + attribute + "]")) apply(root);
      root.querySelectorAll("[" + attribute + "]").forEach(apply);
    });
  }
  // htmx:load fires for the page once htmx starts and for every piece it swaps in later.
  document.addEventListener("htmx:load", function (event) { applyCssVariables(event.target); });

  document.addEventListener("DOMContentLoaded", function () {
    applyCssVariables(document.body);
    document.querySelectorAll("#toasts [data-toast]").forEach(scheduleDismiss);
    if (isMac) {
      document.querySelectorAll("[data-shortcut-hint]").forEach(function (hint) {
        hint.textContent = "⌘K";
      });
    }
  });
})();
