// The command palette (templates/components/command_palette.html): the top bar's search box as
// an ARIA 1.2 combobox with a listbox popup. One instance per page, reachable as
// window.CommandPalette:
//
//   CommandPalette.open()      focus the box (remembering where focus was) and show suggestions
//   CommandPalette.close()     hide the suggestions; text and focus stay
//   CommandPalette.dismiss()   close, clear the text, and give focus back to where it was
//   CommandPalette.isOpen()    whether the suggestions show
//   CommandPalette.move(step)  highlight the next (+1) or previous (-1) option, wrapping
//   CommandPalette.activate()  open the highlighted option
//
// Keys: Ctrl+K / ⌘K opens from anywhere; ↓/↑ move; Enter opens the highlighted option (or, with
// none highlighted, submits the full search); Escape closes, and a second Escape dismisses.
//
// Options are [role=option] elements inside the panel. Opening one fires a cancelable
// "palette:activate" event on the form (detail: {option, href, query}); unless a listener
// cancels it, the browser goes to the option's data-palette-href. The form also fires
// "palette:open" and "palette:close". The AI command bar can add its own options and handle
// them through that event without touching the keyboard logic here.
(function () {
  "use strict";

  var root = null;
  var input = null;
  var panel = null;
  var results = null;
  var status = null;
  var activeIndex = -1;
  var dismissed = false;   // Escape closed the panel: a late answer must not reopen it
  var returnFocus = null;  // where focus was before Ctrl+K

  function bind() {
    root = document.querySelector("[data-command-palette]");
    input = document.getElementById("global-search");
    if (!root) return;
    panel = root.querySelector("[data-palette-panel]");
    results = root.querySelector("[data-palette-results]");
    status = root.querySelector("[data-palette-status]");
  }

  function emit(name, detail, cancelable) {
    var event = new CustomEvent(name, { bubbles: true, cancelable: !!cancelable, detail: detail || {} });
    return root.dispatchEvent(event);
  }

  function query() {
    return input ? input.value.trim() : "";
  }

  function options() {
    return root ? Array.prototype.slice.call(panel.querySelectorAll("[role=option]")) : [];
  }

  function hasContent() {
    return !!results && (options().length > 0 || !!results.querySelector("[data-palette-hint]"));
  }

  function isOpen() {
    return !!panel && !panel.hidden;
  }

  function setActive(index) {
    var all = options();
    activeIndex = index >= 0 && index < all.length ? index : -1;
    all.forEach(function (option, i) {
      var on = i === activeIndex;
      option.setAttribute("aria-selected", on ? "true" : "false");
      option.classList.toggle("is-active", on);
    });
    if (activeIndex >= 0) {
      input.setAttribute("aria-activedescendant", all[activeIndex].id);
      all[activeIndex].scrollIntoView({ block: "nearest" });
    } else {
      input.removeAttribute("aria-activedescendant");
    }
  }

  function show() {
    if (!root || !hasContent()) return;
    var wasOpen = isOpen();
    panel.hidden = false;
    input.setAttribute("aria-expanded", "true");
    root.classList.add("is-open");
    if (!wasOpen) emit("palette:open");
  }

  function close() {
    if (!root) return;
    var wasOpen = isOpen();
    panel.hidden = true;
    input.setAttribute("aria-expanded", "false");
    root.classList.remove("is-open");
    setActive(-1);
    if (wasOpen) emit("palette:close");
  }

  function clearResults() {
    var listbox = results && results.querySelector("[role=listbox]");
    if (!results) return;
    // Keep an empty listbox, so aria-controls always names an element on the page.
    results.querySelectorAll("[data-palette-hint]").forEach(function (el) { el.remove(); });
    if (listbox) listbox.replaceChildren();
    if (status) status.textContent = "";
  }

  function refresh() {
    if (window.htmx && query()) window.htmx.trigger(input, "palette:refresh");
  }

  function open() {
    if (!input) return;
    var current = document.activeElement;
    if (current && current !== document.body && !(root || input.form).contains(current)) {
      returnFocus = current;
    }
    input.focus();
    input.select();
    if (!root) return;
    dismissed = false;
    if (query()) refresh();
  }

  function giveFocusBack() {
    var target = returnFocus;
    returnFocus = null;
    if (target && target.isConnected && typeof target.focus === "function") {
      target.focus();
      if (document.activeElement === target) return;
    }
    input.blur();
  }

  function dismiss() {
    if (!root) return;
    close();
    input.value = "";
    clearResults();
    dismissed = false;
    giveFocusBack();
  }

  function move(step) {
    var all = options();
    if (!all.length) return;
    var next;
    if (activeIndex < 0) next = step > 0 ? 0 : all.length - 1;
    else next = (activeIndex + step + all.length) % all.length;
    setActive(next);
  }

  function activate(option) {
    var all = options();
    option = option || all[activeIndex];
    if (!option) return false;
    var href = option.getAttribute("data-palette-href");
    var proceed = emit("palette:activate", { option: option, href: href, query: query() }, true);
    if (proceed && href) {
      close();
      window.location.assign(href);
    }
    return true;
  }

  function onKeydown(event) {
    if (event.target !== input || !root) return;
    if (event.altKey && event.key !== "ArrowDown" && event.key !== "ArrowUp") return;
    switch (event.key) {
      case "ArrowDown":
      case "ArrowUp":
        event.preventDefault();
        dismissed = false;
        if (!isOpen()) {
          if (!hasContent()) { refresh(); return; }
          show();
          if (event.altKey) return;  // Alt+↓ opens without moving
        }
        move(event.key === "ArrowDown" ? 1 : -1);
        return;
      case "Enter":
        if (isOpen() && activeIndex >= 0) {
          event.preventDefault();
          activate();
        } else if (!query()) {
          event.preventDefault();  // an empty search finds nothing
        }
        return;
      case "Escape":
        // Also keeps the browser from clearing the box on its own.
        event.preventDefault();
        event.stopPropagation();
        if (isOpen()) {
          close();
          dismissed = true;
        } else {
          dismiss();
        }
        return;
      case "Tab":
        close();
        return;
    }
  }

  function onGlobalKeydown(event) {
    if (event.altKey || event.shiftKey || !(event.ctrlKey || event.metaKey)) return;
    if (event.key !== "k" && event.key !== "K") return;
    if (!input) return;
    event.preventDefault();
    open();
  }

  function init() {
    bind();
    if (!input) return;
    document.addEventListener("keydown", onGlobalKeydown);
    if (!root) return;

    input.addEventListener("keydown", onKeydown);
    input.addEventListener("input", function () {
      dismissed = false;
      setActive(-1);
      if (!query()) {
        close();
        clearResults();
      }
    });
    input.addEventListener("focus", function () {
      if (query() && !dismissed && hasContent()) show();
    });
    root.addEventListener("focusout", function (event) {
      if (event.relatedTarget && root.contains(event.relatedTarget)) return;
      close();
      dismissed = false;
      returnFocus = null;  // focus went somewhere on purpose: nothing to give back
    });

    // An empty box asks the server for nothing; htmx cancels the request.
    input.addEventListener("htmx:beforeRequest", function (event) {
      if (!query()) event.preventDefault();
    });
    results.addEventListener("htmx:afterSwap", function () {
      var hint = results.querySelector("[data-palette-hint]");
      var count = options().length;
      setActive(-1);
      if (status) {
        status.textContent = hint ? hint.textContent.trim()
          : count + (count === 1 ? " suggestion" : " suggestions") + ", use the arrow keys to choose";
      }
      if (document.activeElement === input && !dismissed && query()) show();
      else close();
    });

    // The pointer: hovering highlights, a click opens. Pressing keeps focus in the box.
    panel.addEventListener("mousedown", function (event) { event.preventDefault(); });
    panel.addEventListener("mousemove", function (event) {
      var option = event.target.closest && event.target.closest("[role=option]");
      var index = option ? options().indexOf(option) : -1;
      if (index >= 0 && index !== activeIndex) setActive(index);
    });
    panel.addEventListener("click", function (event) {
      var option = event.target.closest && event.target.closest("[role=option]");
      if (!option) return;
      // Ctrl/⌘/Shift-click keeps the browser's own "open in a new tab or window".
      if (event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
      event.preventDefault();
      activate(option);
    });
  }

  window.CommandPalette = {
    open: open,
    close: close,
    dismiss: dismiss,
    isOpen: isOpen,
    move: move,
    activate: function () { return activate(); },
  };

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
