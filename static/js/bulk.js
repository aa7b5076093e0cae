// The contact list's bulk bar: shows when rows are ticked, counts them, offers "Select all
// N matching" (N from the server), loads the member's actions once, and builds export links
// from the list state. All decisions (rights, scope, counts) are the server's.
(function () {
  "use strict";

  var countCache = {};
  // The header checkbox that ticks every row of the page.
  var PAGE_TOGGLES = "input[type=checkbox][data-select-all], thead input[type=checkbox]:not([name])";

  function form() { return document.getElementById("bulk-form"); }
  function bar() { return document.getElementById("bulk-bar"); }
  function boxes(f) { return Array.prototype.slice.call(f.querySelectorAll('input[type=checkbox][name="ids"]')); }
  function pageToggles(f) { return Array.prototype.slice.call(f.querySelectorAll(PAGE_TOGGLES)); }

  // The list state: the form's hidden inputs other than the bar's own and the CSRF token.
  function stateParams(f) {
    var params = new URLSearchParams();
    f.querySelectorAll("input[type=hidden][name]").forEach(function (input) {
      var name = input.name;
      if (name === "csrfmiddlewaretoken" || name === "cursor" || name.indexOf("bulk_") === 0) return;
      params.append(name, input.value);
    });
    return params;
  }

  function allMatching(b) {
    var input = b.querySelector("[data-bulk-all]");
    return input && input.value === "1";
  }

  function setAllMatching(b, on) {
    var input = b.querySelector("[data-bulk-all]");
    if (input) input.value = on ? "1" : "";
  }

  function fetchTotal(f, b) {
    var key = stateParams(f).toString();
    var totalEl = b.querySelector("[data-bulk-total]");
    var selectAll = b.querySelector("[data-bulk-select-all]");
    function show(data) {
      b.dataset.total = String(data.count);
      if (totalEl) totalEl.textContent = data.label;
      render();
    }
    if (countCache[key]) { show(countCache[key]); return; }
    if (selectAll) selectAll.hidden = true;
    fetch(b.dataset.countUrl + (key ? "?" + key : ""), {
      headers: { "Accept": "application/json" }, credentials: "same-origin"
    }).then(function (response) {
      return response.ok ? response.json() : null;
    }).then(function (data) {
      if (!data) return;
      countCache[key] = data;
      show(data);
    }).catch(function () { /* the bar still works on the ticked rows */ });
  }

  function render() {
    var f = form(), b = bar();
    if (!f || !b) return;
    var ticked = boxes(f).filter(function (box) { return box.checked; });
    var total = parseInt(b.dataset.total || "0", 10);
    var status = b.querySelector("[data-bulk-status]");
    var selectAll = b.querySelector("[data-bulk-select-all]");
    var everything = allMatching(b);
    if (!ticked.length && !everything) {
      b.hidden = true;
      var dialog = document.getElementById("bulk-dialog");
      if (dialog && !dialog.querySelector("[hx-trigger]")) dialog.innerHTML = "";
      return;
    }
    if (b.hidden) {
      b.hidden = false;
      var actions = document.getElementById("bulk-actions");
      if (actions && window.htmx) window.htmx.trigger(actions, "bulk-open");
    }
    // "All N matching" follows the list state (a new filter or search means a new N).
    var key = stateParams(f).toString();
    if (b.dataset.stateKey !== key) {
      b.dataset.stateKey = key;
      setAllMatching(b, false);
      fetchTotal(f, b);
    }
    if (status) {
      status.textContent = everything
        ? "All " + total.toLocaleString() + " matching selected"
        : ticked.length.toLocaleString() + " selected";
    }
    if (selectAll) selectAll.hidden = everything || !(total > ticked.length);
    pageToggles(f).forEach(function (toggle) {
      var all = boxes(f);
      toggle.checked = all.length > 0 && all.every(function (box) { return box.checked; });
      toggle.indeterminate = !toggle.checked && ticked.length > 0;
    });
  }

  function exportUrl(f, b, kind) {
    var params = stateParams(f);
    if (!allMatching(b)) {
      boxes(f).forEach(function (box) { if (box.checked) params.append("ids", box.value); });
    }
    var base = kind === "json" ? b.dataset.exportJson : b.dataset.exportCsv;
    var query = params.toString();
    return base + (query ? "?" + query : "");
  }

  document.addEventListener("change", function (event) {
    var f = form(), b = bar();
    if (!f || !b || !f.contains(event.target)) return;
    var target = event.target;
    if (target.matches('input[type=checkbox][name="ids"]')) {
      // Unticking a row narrows "all matching" back to the rows ticked by hand.
      if (!target.checked) setAllMatching(b, false);
      render();
    } else if (target.matches(PAGE_TOGGLES)) {
      boxes(f).forEach(function (box) { box.checked = target.checked; });
      if (!target.checked) setAllMatching(b, false);
      render();
    }
  });

  document.addEventListener("click", function (event) {
    var f = form(), b = bar();
    if (!f || !b || !b.contains(event.target)) return;
    var target = event.target.closest("button, a");
    if (!target) return;
    if (target.matches("[data-bulk-select-all]")) {
      setAllMatching(b, true);
      boxes(f).forEach(function (box) { box.checked = true; });
      render();
    } else if (target.matches("[data-bulk-clear]")) {
      setAllMatching(b, false);
      boxes(f).forEach(function (box) { box.checked = false; });
      render();
    } else if (target.matches("[data-bulk-dismiss]")) {
      var dialog = document.getElementById("bulk-dialog");
      if (dialog) dialog.innerHTML = "";
    } else if (target.matches("[data-bulk-export]")) {
      target.href = exportUrl(f, b, target.dataset.bulkExport);
    }
  });

  // Enter in an action's input runs that action instead of submitting the list's form.
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Enter" || !event.target.matches || !event.target.matches("[data-bulk-arg]")) return;
    var panel = event.target.closest(".bulk-menu-panel");
    var run = panel && panel.querySelector("button[name=bulk_action]");
    if (run) { event.preventDefault(); run.click(); }
  });

  // Opening one action menu closes the others.
  document.addEventListener("toggle", function (event) {
    var menu = event.target;
    if (!menu.matches || !menu.matches(".bulk-menu") || !menu.open) return;
    document.querySelectorAll(".bulk-menu[open]").forEach(function (other) {
      if (other !== menu) other.removeAttribute("open");
    });
  }, true);

  // Running an action closes its menu: the answer shows in the dialog area below.
  document.addEventListener("htmx:beforeRequest", function (event) {
    var b = bar();
    if (!b || !b.contains(event.target) || !event.target.matches("button[name=bulk_action]")) return;
    b.querySelectorAll(".bulk-menu[open]").forEach(function (menu) { menu.removeAttribute("open"); });
  });

  // A new page of rows (HTMX swap) starts with whatever is ticked on it.
  document.addEventListener("htmx:afterSettle", function (event) {
    var b = bar();
    if (b && !b.contains(event.target)) {
      if (b.hidden) setAllMatching(b, false);
      render();
    }
  });
  document.addEventListener("DOMContentLoaded", render);
})();
