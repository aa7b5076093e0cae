// Kanban boards: the deal board (templates/pipeline/board.html) and the contact lifecycle board
// (templates/pipeline/lifecycle.html). One module for both; the markup says what to do:
//
//   [data-kanban]              the board; data-sort-within="false" when a column has no manual
//                              order (contacts), so cards only move between columns
//   [data-kanban-list]         a column's cards, data-stage = the value posted as `stage`;
//                              [data-sortable] only when the member may move cards
//   [data-kanban-card]         a card: data-id, data-move-url (POST stage, before, after),
//                              data-close-url (deals: the won/lost reason form)
//   [data-move-to]             a card's "Move to…" button: a link to a page with the form
//                              without JavaScript; here it opens #move-template in #board-dialog
//   [data-dropzone]            Won / Lost: dropping a card there asks for the reason
//
// Drag and drop is SortableJS (static/vendor/sortablejs). Every change is posted with the CSRF
// token and `Accept: application/json`; the answer carries the card re-rendered and the fresh
// totals of the columns it touched. When the server refuses, the card goes back where it was and
// the message is shown.
(function () {
  "use strict";

  var board = document.querySelector("[data-kanban]");
  if (!board) return;

  var GROUP = "kanban-" + board.getAttribute("data-kanban");
  var SORT_WITHIN = board.getAttribute("data-sort-within") !== "false";
  var CLOSE_STATUSES = ["won", "lost"];
  var NETWORK_ERROR = "The change could not be saved: the connection failed. Try again.";
  var dialog = document.getElementById("board-dialog");
  var moveTemplate = document.getElementById("move-template");
  var live = document.getElementById("board-status");
  // What the dialog is doing: {card, from, index, done, returnFocus}. `from` and `index` say
  // where a dragged card came from, so a cancelled reason puts it back.
  var current = null;

  // Helpers ----------------------------------------------------------------------------------
  function csrfToken() {
    try {
      var headers = JSON.parse(document.body.getAttribute("hx-headers") || "{}");
      if (headers["X-CSRFToken"]) return headers["X-CSRFToken"];
    } catch (error) { /* fall through to a form's token */ }
    var input = document.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  function announce(text) {
    if (!live || !text) return;
    live.textContent = "";
    window.setTimeout(function () { live.textContent = text; }, 50);
  }

  function toast(level, text) {
    if (typeof window.crmToast === "function") window.crmToast(level, text);
    announce(text);
  }

  function send(method, url, body) {
    return fetch(url, {
      method: method,
      body: body || null,
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrfToken(), "HX-Request": "true", "Accept": "application/json" }
    }).then(function (response) {
      var type = response.headers.get("Content-Type") || "";
      if (type.indexOf("application/json") !== -1) {
        return response.json().then(function (data) {
          return { ok: response.ok && data.ok !== false, status: response.status, data: data };
        });
      }
      return response.text().then(function (html) {
        return { ok: response.ok, status: response.status, html: html, data: {} };
      });
    });
  }

  function errorText(result) {
    if (result && result.data && result.data.error) return result.data.error;
    if (result && result.status === 404) return "That card is no longer on your board. Reload the page to see the latest.";
    if (result && result.status === 403) return "Your role may not make this change.";
    return "The change could not be saved. Try again.";
  }

  function fromHtml(html) {
    var template = document.createElement("template");
    template.innerHTML = (html || "").trim();
    return template.content.firstElementChild;
  }

  function applyColors(root) {
    if (!root || !root.querySelectorAll) return;
    var paint = function (el) {
      var color = el.getAttribute("data-column-color") || "";
      if (/^#[0-9a-fA-F]{3,8}$/.test(color)) el.style.setProperty("--stage", color);
    };
    if (root.matches && root.matches("[data-column-color]")) paint(root);
    root.querySelectorAll("[data-column-color]").forEach(paint);
  }

  function listFor(stage) {
    var lists = board.querySelectorAll("[data-kanban-list]");
    for (var i = 0; i < lists.length; i++) {
      if (lists[i].getAttribute("data-stage") === stage) return lists[i];
    }
    return null;
  }

  // A column that has not loaded all its cards yet: a card sent to its bottom belongs further
  // down than what is on screen, and shows up when the rest is loaded.
  function hasMore(list) {
    var more = document.getElementById("more-" + list.getAttribute("data-stage"));
    return !!(more && more.hasAttribute("hx-get"));
  }

  function updateColumns(columns) {
    (columns || []).forEach(function (column) {
      var existing = document.getElementById("totals-" + column.stage);
      var fresh = fromHtml(column.html);
      if (existing && fresh) existing.replaceWith(fresh);
    });
  }

  // A move's share of two columns' totals ("deltas": count, value, weighted) is added to the
  // exact figures the totals carry (data-value, data-weighted: decimals with 6 places), in
  // whole millionths so nothing drifts, and shown rounded half up as the server shows them.
  var MICRO = BigInt(1000000);
  var HALF = BigInt(500000);
  var ZERO = BigInt(0);

  function toMicro(text) {
    var value = String(text || "0").trim();
    var negative = value.charAt(0) === "-";
    if (negative) value = value.slice(1);
    var parts = value.split(".");
    var fraction = (parts[1] || "").slice(0, 6);
    while (fraction.length < 6) fraction += "0";
    var result = BigInt(parts[0] || "0") * MICRO + BigInt(fraction);
    return negative ? -result : result;
  }

  function fromMicro(amount) {
    var negative = amount < ZERO;
    var size = negative ? -amount : amount;
    var fraction = (size % MICRO).toString();
    while (fraction.length < 6) fraction = "0" + fraction;
    return (negative ? "-" : "") + (size / MICRO).toString() + "." + fraction;
  }

  function wholeText(currency, amount) {
    var units = amount < ZERO ? -((-amount + HALF) / MICRO) : (amount + HALF) / MICRO;
    return currency + " " + units.toLocaleString("en-US");
  }

  function applyDeltas(deltas) {
    (deltas || []).forEach(function (delta) {
      var totals = document.getElementById("totals-" + delta.stage);
      if (!totals) return;
      var count = totals.querySelector("[data-count]");
      if (count) {
        var number = Math.max(0, parseInt(count.getAttribute("data-count"), 10) + delta.count);
        count.setAttribute("data-count", String(number));
        count.querySelector("strong").textContent = number.toLocaleString("en-US");
        var noun = count.querySelector("[data-noun-one]");
        if (noun) noun.textContent = noun.getAttribute(number === 1 ? "data-noun-one" : "data-noun-many");
      }
      var currency = totals.getAttribute("data-currency") || "";
      ["value", "weighted"].forEach(function (key) {
        var shown = totals.querySelector("[data-total=" + key + "]");
        if (delta[key] === undefined || !shown || !totals.hasAttribute("data-" + key)) return;
        var amount = toMicro(totals.getAttribute("data-" + key)) + toMicro(delta[key]);
        totals.setAttribute("data-" + key, fromMicro(amount));
        shown.textContent = wholeText(currency, amount);
      });
    });
  }

  function putBack(card, from, index) {
    if (!from) return;
    if (card.parentNode) card.parentNode.removeChild(card);
    var cards = from.querySelectorAll(":scope > [data-kanban-card]");
    from.insertBefore(card, cards[index] || null);
  }

  function cardId(el) {
    return el && el.hasAttribute && el.hasAttribute("data-kanban-card") ? el.getAttribute("data-id") : "";
  }

  function setBusy(card, busy) {
    card.classList.toggle("is-saving", busy);
    card.setAttribute("aria-busy", busy ? "true" : "false");
  }

  function focusCard(card) {
    if (!card || !document.contains(card)) return;
    var target = card.querySelector("[data-move-to]") || card.querySelector("a");
    if (target) target.focus();
    if (card.scrollIntoView) card.scrollIntoView({ block: "nearest", inline: "nearest" });
  }

  // Drag and drop ----------------------------------------------------------------------------
  function dropped(event) {
    var card = event.item;
    var from = event.from;
    var to = event.to;
    if (to.hasAttribute("data-dropzone")) return;  // the drop zone asks for a reason
    if (to === from && event.oldIndex === event.newIndex) return;
    var body = new FormData();
    body.append("stage", to.getAttribute("data-stage"));
    body.append("before", cardId(card.previousElementSibling));
    body.append("after", cardId(card.nextElementSibling));
    setBusy(card, true);
    send("POST", card.getAttribute("data-move-url"), body).then(function (result) {
      setBusy(card, false);
      if (result.ok && result.data.card) {
        var fresh = fromHtml(result.data.card);
        asButtons(fresh);
        card.replaceWith(fresh);
        updateColumns(result.data.columns);
        applyDeltas(result.data.deltas);
        announce(result.data.message);
      } else {
        putBack(card, from, event.oldIndex);
        toast("error", errorText(result));
      }
    }).catch(function () {
      setBusy(card, false);
      putBack(card, from, event.oldIndex);
      toast("error", NETWORK_ERROR);
    });
  }

  function startSorting() {
    if (typeof window.Sortable !== "function") return;
    board.querySelectorAll("[data-kanban-list][data-sortable]").forEach(function (list) {
      window.Sortable.create(list, {
        group: GROUP,
        sort: SORT_WITHIN,
        draggable: "[data-kanban-card]",
        // Controls inside a card stay usable: pressing them never starts a drag.
        filter: "[data-move-to], input, select, textarea, button",
        preventOnFilter: false,
        animation: 150,
        ghostClass: "is-ghost",
        chosenClass: "is-chosen",
        dragClass: "is-dragging",
        onStart: function () { document.body.classList.add("kanban-dragging"); },
        onEnd: function (event) {
          document.body.classList.remove("kanban-dragging");
          dropped(event);
        }
      });
    });
    document.querySelectorAll("[data-dropzone]").forEach(function (zone) {
      window.Sortable.create(zone, {
        group: { name: GROUP, pull: false, put: true },
        sort: false,
        draggable: "[data-kanban-card]",
        onAdd: function (event) {
          askReason(event.item, zone.getAttribute("data-dropzone"), {
            from: event.from, index: event.oldIndex, returnFocus: null
          });
        }
      });
    });
  }

  // The dialog: "Move to…" and the won/lost reason --------------------------------------------
  function openDialog(content, state) {
    current = state;
    dialog.innerHTML = "";
    dialog.appendChild(content);
    if (!dialog.open) dialog.showModal();
    var first = dialog.querySelector("select, input:not([type=hidden]), textarea");
    if (first) first.focus();
  }

  function finish() {
    if (!current) return;
    var state = current;
    current = null;
    if (!state.done && state.from) putBack(state.card, state.from, state.index);
    if (state.returnFocus) focusCard(state.returnFocus);
  }

  if (dialog) {
    dialog.addEventListener("close", function () {
      finish();
      dialog.innerHTML = "";
    });
    dialog.addEventListener("click", function (event) {
      var cancel = event.target.closest && event.target.closest("[data-dialog-cancel]");
      if (cancel) {
        event.preventDefault();
        dialog.close();
      }
    });
  }

  function askReason(card, status, where) {
    var state = { card: card, from: where.from, index: where.index, done: false, returnFocus: where.returnFocus };
    var base = card.getAttribute("data-close-url");
    if (!dialog || !base) {
      if (state.from) putBack(card, state.from, state.index);
      return;
    }
    current = state;
    var url = base + (base.indexOf("?") === -1 ? "?" : "&") + "status=" + encodeURIComponent(status) +
      "&next=" + encodeURIComponent(window.location.pathname + window.location.search);
    send("GET", url).then(function (result) {
      if (current !== state) return;
      // 400: the form with what stands in the way ("already won"); anything else is an error.
      if (!result.html || (result.status !== 200 && result.status !== 400)) {
        if (dialog.open) dialog.close(); else finish();
        toast("error", errorText(result));
        return;
      }
      openDialog(fromHtml(result.html), state);
    }).catch(function () {
      if (dialog.open) dialog.close(); else finish();
      toast("error", NETWORK_ERROR);
    });
  }

  function openMoveTo(card) {
    if (!dialog || !moveTemplate) return false;
    var form = moveTemplate.content.firstElementChild.cloneNode(true);
    form.setAttribute("action", card.getAttribute("data-move-url"));
    var title = card.querySelector(".kanban-card-title");
    var slot = form.querySelector("[data-move-title]");
    if (slot && title) slot.textContent = title.textContent;
    var list = card.closest("[data-kanban-list]");
    if (list && form.elements.stage) form.elements.stage.value = list.getAttribute("data-stage");
    openDialog(form, { card: card, from: null, index: 0, done: false, returnFocus: card });
    return true;
  }

  function submitMove(form) {
    var state = current;
    if (!state) return;
    var card = state.card;
    var stage = form.elements.stage ? form.elements.stage.value : "";
    if (CLOSE_STATUSES.indexOf(stage) !== -1) {
      askReason(card, stage, { from: null, index: 0, returnFocus: card });
      return;
    }
    var position = form.elements.position ? form.elements.position.value : "top";
    setBusy(card, true);
    send("POST", form.getAttribute("action"), new FormData(form)).then(function (result) {
      setBusy(card, false);
      if (!result.ok || !result.data.card) {
        toast("error", errorText(result));
        return;
      }
      var list = listFor(result.data.stage);
      var fresh = fromHtml(result.data.card);
      asButtons(fresh);
      var keep = list && fresh && !(position === "bottom" && hasMore(list));
      card.parentNode.removeChild(card);
      if (keep && position === "bottom") {
        list.appendChild(fresh);
      } else if (keep) {
        list.insertBefore(fresh, list.querySelector(":scope > [data-kanban-card]"));
      }
      updateColumns(result.data.columns);
      applyDeltas(result.data.deltas);
      state.done = true;
      state.returnFocus = keep ? fresh : (list ? list.closest("section") : null);
      dialog.close();
      announce(result.data.message);
    }).catch(function () {
      setBusy(card, false);
      toast("error", NETWORK_ERROR);
    });
  }

  function submitReason(form) {
    var state = current;
    send("POST", form.getAttribute("action"), new FormData(form)).then(function (result) {
      if (result.ok && result.data.ok) {
        if (state) {
          state.done = true;
          var column = state.card.closest("section");
          if (state.card.parentNode) state.card.parentNode.removeChild(state.card);
          state.returnFocus = null;
          var next = column && column.querySelector("[data-kanban-card]");
          if (next) state.returnFocus = next;
        }
        updateColumns(result.data.columns);
        dialog.close();
        toast("success", result.data.message);
      } else if (result.html && result.status === 400) {
        var fresh = fromHtml(result.html);
        dialog.innerHTML = "";
        dialog.appendChild(fresh);
        var invalid = dialog.querySelector("[aria-invalid=true]") || dialog.querySelector("select");
        if (invalid) invalid.focus();
      } else {
        dialog.close();
        toast("error", errorText(result));
      }
    }).catch(function () {
      toast("error", NETWORK_ERROR);
    });
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-move-to]");
    if (!button || !board.contains(button)) return;
    var card = button.closest("[data-kanban-card]");
    if (card && openMoveTo(card)) event.preventDefault();
  });

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!dialog || !form.matches || !dialog.contains(form)) return;
    if (form.matches("[data-move-form]")) {
      event.preventDefault();
      submitMove(form);
    } else if (form.matches("[data-close-form]")) {
      event.preventDefault();
      submitReason(form);
    }
  });

  // With JavaScript the "Move to…" links open a dialog: they act as buttons, Space included.
  function asButtons(root) {
    if (!dialog || !moveTemplate || !root || !root.querySelectorAll) return;
    var mark = function (link) { link.setAttribute("role", "button"); };
    if (root.matches && root.matches("[data-move-to]")) mark(root);
    root.querySelectorAll("[data-move-to]").forEach(mark);
  }
  document.addEventListener("keydown", function (event) {
    if (event.key !== " ") return;
    var link = event.target.closest && event.target.closest("[data-move-to][role=button]");
    if (!link) return;
    event.preventDefault();
    link.click();
  });

  // A quick-create form comes back fresh (or with its errors): keep the keyboard in it.
  document.addEventListener("htmx:load", function (event) {
    var root = event.target;
    applyColors(root);
    asButtons(root);
    if (root.matches && root.matches("form.board-quick")) {
      var input = root.querySelector("[aria-invalid=true]") || root.querySelector("input[name=title]");
      if (input) input.focus();
    }
  });

  applyColors(board);
  asButtons(board);
  startSorting();
})();
