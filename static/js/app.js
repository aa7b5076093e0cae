// Shell helpers: toasts (Django messages and HX-Trigger "toast" events), menus that close
// on Escape or an outside click. (Ctrl/⌘+K and the top-bar search: command_palette.js.)
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
    stamp(toast);
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

  // A toast describes the state it was shown in, and leaves (errors excepted: they are
  // dismissed by hand) as soon as that state is gone:
  // - the address changes: a new filter, another page of results, Back or Forward. Toasts
  //   the request that changed it brought along stay, since they describe the new state;
  // - a region that reports an outcome appears (data-toast-supersedes, e.g. a finished
  //   import's result): "Importing …" or "Undoing …" is no longer true, the page says what is.
  var lastRequestStart = 0;
  function dismissStale(bornBefore) {
    document.querySelectorAll("#toasts [data-toast]").forEach(function (toast) {
      if (toast.classList.contains("toast-error")) return;
      if (Number(toast.getAttribute("data-toast-born") || 0) < bornBefore) dismiss(toast);
    });
  }
  function stamp(toast) {
    if (!toast.hasAttribute("data-toast-born")) toast.setAttribute("data-toast-born", String(Date.now()));
  }
  document.addEventListener("htmx:beforeRequest", function () { lastRequestStart = Date.now(); });
  ["htmx:pushedIntoHistory", "htmx:replacedInHistory"].forEach(function (name) {
    document.addEventListener(name, function () { dismissStale(lastRequestStart || Date.now()); });
  });
  document.addEventListener("htmx:historyRestore", function () { dismissStale(Date.now() + 1); });
  window.addEventListener("popstate", function () { dismissStale(Date.now() + 1); });
  document.addEventListener("htmx:load", function (event) {
    var root = event.target;
    if (!root || !root.querySelector) return;
    if ((root.matches && root.matches("[data-toast-supersedes]")) || root.querySelector("[data-toast-supersedes]")) {
      dismissStale(Date.now() + 1);
    }
  });

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
    }
  });

  // A search box with nothing behind it yet must not submit the page to itself.
  document.addEventListener("submit", function (event) {
    var input = event.target.querySelector && event.target.querySelector("#global-search");
    if (input && input.getAttribute("aria-disabled") === "true") event.preventDefault();
  });

  // Behaviour that used to sit in on*="" attributes, which the Content-Security-Policy ----
  // refuses (as it refuses htmx's hx-on): delegated listeners read data-attributes instead.

  // Confirmation: the one way every destructive action asks first ---------------------
  // <form data-confirm="Delete the task “Call Ann”? This can't be undone." data-confirm-button="Delete task">
  // opens a modal dialog that says what will be removed. Cancel (or Escape) keeps
  // everything; only the danger button submits the form, through htmx when the form has
  // hx-post. data-confirm-cancel names the safe button when "Cancel" would be ambiguous.
  // Capture phase: before any other submit listener (htmx's) sees the event.
  // tests/test_destructive_actions.py checks that every destructive endpoint is behind it
  // (or behind a confirmation page, or can be undone).
  var confirmedForms = new WeakSet();

  function confirmDialog(question, buttonLabel, cancelLabel, onConfirm, returnFocusTo) {
    if (typeof HTMLDialogElement !== "function") {
      if (window.confirm(question)) onConfirm();
      return;
    }
    var dialog = document.createElement("dialog");
    dialog.className = "confirm-dialog";
    dialog.setAttribute("role", "alertdialog");
    dialog.setAttribute("aria-labelledby", "confirm-dialog-question");
    dialog.setAttribute("data-confirm-dialog", "");
    var form = document.createElement("form");
    form.method = "dialog";
    var text = document.createElement("p");
    text.id = "confirm-dialog-question";
    text.className = "confirm-dialog-question";
    text.textContent = question;
    var buttons = document.createElement("div");
    buttons.className = "confirm-dialog-buttons";
    var cancel = document.createElement("button");
    cancel.type = "submit";
    cancel.value = "cancel";
    cancel.className = "button";
    cancel.textContent = cancelLabel;
    var ok = document.createElement("button");
    ok.type = "submit";
    ok.value = "confirm";
    ok.className = "button button-danger";
    ok.textContent = buttonLabel;
    buttons.appendChild(cancel);
    buttons.appendChild(ok);
    form.appendChild(text);
    form.appendChild(buttons);
    dialog.appendChild(form);
    document.body.appendChild(dialog);
    dialog.addEventListener("close", function () {
      var yes = dialog.returnValue === "confirm";
      dialog.remove();
      if (yes) onConfirm();
      else if (returnFocusTo && returnFocusTo.focus) returnFocusTo.focus();
    });
    dialog.showModal();
    cancel.focus();  // the safe choice is the default one
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute && form.getAttribute("data-confirm");
    if (!question) return;
    if (confirmedForms.has(form)) {
      confirmedForms.delete(form);
      return;
    }
    event.preventDefault();
    event.stopImmediatePropagation();
    var submitter = event.submitter || null;
    var label = form.getAttribute("data-confirm-button") ||
      (submitter && submitter.textContent.trim()) || "Confirm";
    var keep = form.getAttribute("data-confirm-cancel") || "Cancel";
    confirmDialog(question, label, keep, function () {
      confirmedForms.add(form);
      if (form.requestSubmit) form.requestSubmit(submitter && submitter.form === form ? submitter : undefined);
      else form.submit();
    }, submitter);
  }, true);

  // <input data-submit-on-change> submits its form as soon as it changes.
  document.addEventListener("change", function (event) {
    var input = event.target;
    if (!input.matches || !input.matches("[data-submit-on-change]") || !input.form) return;
    input.form.requestSubmit();
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
    document.querySelectorAll("#toasts [data-toast]").forEach(function (toast) {
      stamp(toast);
      scheduleDismiss(toast);
    });
    if (document.querySelector("[data-toast-supersedes]")) dismissStale(Date.now() + 1);
    if (isMac) {
      document.querySelectorAll("[data-shortcut-hint]").forEach(function (hint) {
        hint.textContent = "⌘K";
      });
    }
  });
})();
