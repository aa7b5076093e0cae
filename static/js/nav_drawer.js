// The navigation drawer: on narrow screens (see NARROW, the same width as app.css) the sidebar
// (components/sidebar.html, #app-nav) slides in when the top bar's menu button is pressed.
// While it is open the rest of the page is inert, Tab cycles inside the drawer, and Escape, the
// close button or a press outside closes it and gives focus back to the menu button.
// On a wide screen the sidebar is always there and none of this applies.
(function () {
  "use strict";

  var NARROW = "(max-width: 760px)";
  var FOCUSABLE = "a[href], button:not([disabled]), input:not([disabled]), select:not([disabled]), " +
    "textarea:not([disabled]), summary, [tabindex]:not([tabindex='-1'])";

  var shell, drawer, toggle, media;

  function isOpen() {
    return !!shell && shell.classList.contains("nav-open");
  }

  function background() {
    // Everything a keyboard or screen reader could reach besides the drawer.
    return Array.prototype.filter.call(document.body.children, function (el) {
      return el !== shell && !el.contains(drawer) && el.tagName !== "SCRIPT";
    }).concat(Array.prototype.filter.call(shell.children, function (el) { return el !== drawer; }));
  }

  function focusables() {
    return Array.prototype.filter.call(drawer.querySelectorAll(FOCUSABLE), function (el) {
      return el.offsetParent !== null || el === document.activeElement;
    });
  }

  function open() {
    if (!drawer || isOpen() || !media.matches) return;
    shell.classList.add("nav-open");
    document.documentElement.classList.add("nav-locked");
    toggle.setAttribute("aria-expanded", "true");
    drawer.setAttribute("role", "dialog");
    drawer.setAttribute("aria-modal", "true");
    drawer.setAttribute("aria-label", "Menu");
    background().forEach(function (el) { el.inert = true; });
    var current = drawer.querySelector("[aria-current=page]") || focusables()[0];
    if (current) current.focus();
  }

  function close(options) {
    if (!drawer || !isOpen()) return;
    shell.classList.remove("nav-open");
    document.documentElement.classList.remove("nav-locked");
    toggle.setAttribute("aria-expanded", "false");
    drawer.removeAttribute("role");
    drawer.removeAttribute("aria-modal");
    drawer.removeAttribute("aria-label");
    background().forEach(function (el) { el.inert = false; });
    if (!options || options.restoreFocus !== false) toggle.focus();
  }

  function init() {
    shell = document.querySelector(".shell");
    drawer = document.querySelector("[data-nav-drawer]");
    toggle = document.querySelector("[data-nav-toggle]");
    if (!shell || !drawer || !toggle) return;
    media = window.matchMedia(NARROW);

    toggle.addEventListener("click", function () {
      if (isOpen()) close(); else open();
    });

    document.addEventListener("click", function (event) {
      if (!isOpen() || event.target.closest("[data-nav-toggle]")) return;
      if (event.target.closest("[data-nav-close]")) { close(); return; }
      // A press on the dimmed page beside the drawer.
      if (!drawer.contains(event.target)) close();
    });

    document.addEventListener("keydown", function (event) {
      if (!isOpen()) return;
      if (event.key === "Escape") {
        // A menu open inside the drawer (the organization switcher) closes first (app.js).
        if (event.defaultPrevented) return;
        event.preventDefault();
        close();
        return;
      }
      if (event.key !== "Tab") return;
      var items = focusables();
      if (!items.length) return;
      var first = items[0];
      var last = items[items.length - 1];
      if (event.shiftKey && (document.activeElement === first || !drawer.contains(document.activeElement))) {
        event.preventDefault();
        last.focus();
      } else if (!event.shiftKey && (document.activeElement === last || !drawer.contains(document.activeElement))) {
        event.preventDefault();
        first.focus();
      }
    });

    // Grown past the phone width (a rotated tablet): the sidebar is back in place.
    var onChange = function () { if (!media.matches) close({ restoreFocus: false }); };
    if (media.addEventListener) media.addEventListener("change", onChange);
    else if (media.addListener) media.addListener(onChange);

    // Going to another page through htmx (boosted links) leaves no drawer open behind.
    document.addEventListener("htmx:beforeHistorySave", function () { close({ restoreFocus: false }); });
  }

  window.NavDrawer = { open: function () { open(); }, close: function () { close(); }, isOpen: isOpen };

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
