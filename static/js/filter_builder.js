// The smart-view filter builder: "+ Add filter" rows (field, operator, value) that combine with
// AND inside a group, "+ Or group" for alternatives. It writes the filter JSON
// ({"groups": [{"conditions": [{field, op, value}]}]}) into a hidden input of the list form;
// the server validates it and answers with a message naming the condition when it is wrong.
// Without JavaScript the form offers a single condition instead (see contact_list.html).
(function () {
  "use strict";

  var VALUELESS = { is_empty: true, is_not_empty: true };

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (name) {
      if (name === "text") node.textContent = attrs[name];
      else if (name === "className") node.className = attrs[name];
      else node.setAttribute(name, attrs[name]);
    });
    (children || []).forEach(function (child) { if (child) node.appendChild(child); });
    return node;
  }

  function option(value, label, selected) {
    var opt = el("option", { value: value, text: label });
    if (selected) opt.selected = true;
    return opt;
  }

  function Builder(root) {
    this.root = root;
    this.schema = JSON.parse(document.getElementById(root.dataset.schema).textContent);
    this.input = document.getElementById(root.dataset.input);
    this.form = this.input.form;
    this.fields = {};
    var self = this;
    this.schema.fields.forEach(function (f) { self.fields[f.key] = f; });
    var spec;
    try { spec = JSON.parse(this.input.value || "{}"); } catch (e) { spec = {}; }
    this.groups = (spec.groups || []).map(function (g) {
      return (g.conditions || []).map(function (c) { return { field: c.field, op: c.op, value: c.value }; });
    });
    this.errorCondition = parseInt(root.dataset.errorCondition || "0", 10) || 0;
    this.render();
  }

  Builder.prototype.opsFor = function (field) {
    var spec = this.fields[field];
    return spec ? (this.schema.ops[spec.type] || []) : [];
  };

  // A changed builder is what the server should apply: enable the hidden input (it starts
  // disabled so an untouched saved view is not reported as edited).
  Builder.prototype.sync = function () {
    var groups = this.groups
      .map(function (conditions) {
        return { conditions: conditions.filter(function (c) { return c.field && c.op; }).map(function (c) {
          var out = { field: c.field, op: c.op };
          if (!VALUELESS[c.op]) out.value = c.value === undefined ? "" : c.value;
          return out;
        }) };
      })
      .filter(function (g) { return g.conditions.length; });
    this.input.value = JSON.stringify({ groups: groups });
    this.input.disabled = false;
  };

  Builder.prototype.render = function () {
    var self = this;
    this.root.textContent = "";
    var number = 0;
    this.groups.forEach(function (conditions, gi) {
      if (gi > 0) self.root.appendChild(el("p", { className: "builder-or", text: "— or —" }));
      var box = el("div", { className: "builder-group", role: "group", "aria-label": "Group " + (gi + 1) + " (all must match)" });
      conditions.forEach(function (condition, ci) {
        number += 1;
        if (ci > 0) box.appendChild(el("span", { className: "builder-and", text: "and" }));
        box.appendChild(self.renderCondition(condition, gi, ci, number));
      });
      var add = el("button", { type: "button", className: "button button-small", text: "+ Add filter" });
      add.addEventListener("click", function () {
        self.groups[gi].push({ field: "", op: "", value: "" });
        self.render();
        self.focusLast(gi);
      });
      box.appendChild(add);
      self.root.appendChild(box);
    });
    var actions = el("div", { className: "builder-actions" });
    var addFirst = el("button", { type: "button", className: "button button-small", "data-builder-add": "", text: this.groups.length ? "+ Or group" : "+ Add filter" });
    addFirst.addEventListener("click", function () {
      self.groups.push([{ field: "", op: "", value: "" }]);
      self.render();
      self.focusLast(self.groups.length - 1);
    });
    actions.appendChild(addFirst);
    if (this.groups.length) {
      var clear = el("button", { type: "button", className: "link-button", text: "Remove all conditions" });
      clear.addEventListener("click", function () { self.groups = []; self.sync(); self.render(); });
      actions.appendChild(clear);
    }
    this.root.appendChild(actions);
  };

  Builder.prototype.focusLast = function (gi) {
    var groups = this.root.querySelectorAll(".builder-group");
    var rows = groups[gi] ? groups[gi].querySelectorAll(".builder-condition") : [];
    var last = rows[rows.length - 1];
    if (last) last.querySelector("select").focus();
  };

  Builder.prototype.renderCondition = function (condition, gi, ci, number) {
    var self = this;
    var row = el("div", { className: "builder-condition", "data-condition": String(number) });
    if (number === this.errorCondition) row.classList.add("is-invalid");

    var fieldSelect = el("select", { "aria-label": "Field of condition " + number, "data-builder-field": "" });
    fieldSelect.appendChild(option("", "Choose a field…", !condition.field));
    var groups = {};
    this.schema.fields.forEach(function (f) {
      if (!groups[f.group]) {
        groups[f.group] = el("optgroup", { label: f.group });
        fieldSelect.appendChild(groups[f.group]);
      }
      groups[f.group].appendChild(option(f.key, f.label, f.key === condition.field));
    });
    fieldSelect.addEventListener("change", function () {
      condition.field = fieldSelect.value;
      var ops = self.opsFor(condition.field);
      condition.op = ops.length ? ops[0][0] : "";
      condition.value = "";
      self.sync();
      self.render();
      var again = self.root.querySelector('[data-condition="' + number + '"] [data-builder-op]');
      if (again) again.focus();
    });
    row.appendChild(fieldSelect);

    var opSelect = el("select", { "aria-label": "Operator of condition " + number, "data-builder-op": "" });
    this.opsFor(condition.field).forEach(function (pair) {
      opSelect.appendChild(option(pair[0], pair[1], pair[0] === condition.op));
    });
    opSelect.disabled = !condition.field;
    opSelect.addEventListener("change", function () {
      var wasList = condition.op === "any_of";
      condition.op = opSelect.value;
      if (wasList !== (condition.op === "any_of")) condition.value = condition.op === "any_of" ? [] : "";
      self.sync();
      self.render();
      var again = self.root.querySelector('[data-condition="' + number + '"] [data-builder-op]');
      if (again) again.focus();
    });
    row.appendChild(opSelect);

    if (condition.field && condition.op && !VALUELESS[condition.op]) {
      row.appendChild(this.valueInput(condition, number));
    }

    var remove = el("button", { type: "button", className: "link-button builder-remove", "aria-label": "Remove condition " + number, text: "×" });
    remove.addEventListener("click", function () {
      self.groups[gi].splice(ci, 1);
      if (!self.groups[gi].length) self.groups.splice(gi, 1);
      self.sync();
      self.render();
    });
    row.appendChild(remove);
    return row;
  };

  // The value input that fits the field's type and the operator.
  Builder.prototype.valueInput = function (condition, number) {
    var self = this;
    var spec = this.fields[condition.field] || { type: "text", choices: [] };
    // Related conditions (orders, associated records) edit an object: filter_builder_related.js.
    if (spec.related && window.FilterBuilderRelated) {
      return window.FilterBuilderRelated.valueInput(this, condition, number, spec);
    }
    var label = "Value of condition " + number;
    var choices = this.choicesFor(spec);
    var input;
    if (condition.op === "in_last_days") {
      input = el("input", { type: "number", min: "1", max: "3650", step: "1", "aria-label": "Number of days for condition " + number, placeholder: "days" });
      input.value = condition.value === undefined ? "" : condition.value;
    } else if (condition.op === "any_of" && choices) {
      input = el("select", { multiple: "", size: String(Math.min(5, choices.length || 1)), "aria-label": label });
      var chosen = Array.isArray(condition.value) ? condition.value.map(String) : [];
      choices.forEach(function (pair) { input.appendChild(option(pair[0], pair[1], chosen.indexOf(String(pair[0])) !== -1)); });
    } else if (condition.op === "any_of") {
      input = el("input", { type: "text", "aria-label": label + " (separate with commas)", placeholder: "a, b, c" });
      input.value = Array.isArray(condition.value) ? condition.value.join(", ") : (condition.value || "");
    } else if (choices && (condition.op === "eq" || condition.op === "neq")) {
      input = el("select", { "aria-label": label });
      input.appendChild(option("", "Choose…", condition.value === "" || condition.value === undefined));
      choices.forEach(function (pair) { input.appendChild(option(pair[0], pair[1], String(pair[0]) === String(condition.value))); });
    } else if (spec.type === "date" || spec.type === "datetime") {
      input = el("input", { type: "date", "aria-label": label });
      input.value = condition.value || "";
    } else if (spec.type === "number") {
      input = el("input", { type: "number", step: spec.whole ? "1" : "any", "aria-label": label });
      input.value = condition.value === undefined ? "" : condition.value;
    } else {
      input = el("input", { type: "text", "aria-label": label });
      input.value = condition.value === undefined || condition.value === null ? "" : condition.value;
    }
    input.setAttribute("data-builder-value", "");
    var update = function () {
      if (input.multiple) {
        condition.value = Array.prototype.filter.call(input.options, function (o) { return o.selected; }).map(function (o) { return o.value; });
      } else if (condition.op === "any_of") {
        condition.value = input.value.split(",").map(function (s) { return s.trim(); }).filter(Boolean);
      } else if (input.type === "number" && input.value !== "") {
        condition.value = Number(input.value);
      } else if (spec.type === "bool" && (input.value === "true" || input.value === "false")) {
        condition.value = input.value === "true";
      } else {
        condition.value = input.value;
      }
      self.sync();
    };
    input.addEventListener("change", update);
    input.addEventListener("input", update);
    return input;
  };

  // Pick-lists for a field, or null when the value is typed.
  Builder.prototype.choicesFor = function (spec) {
    if (spec.type === "choice" && spec.choices && spec.choices.length) return spec.choices;
    if (spec.type === "bool") return [["true", "Yes"], ["false", "No"]];
    if (spec.type === "tags") return (this.schema.tags || []).map(function (name) { return [name, name]; });
    if (spec.type === "user") {
      return [["me", "Me"], ["unclaimed", "No one"]].concat(this.schema.users || []);
    }
    return null;
  };

  function boot(scope) {
    (scope || document).querySelectorAll("[data-filter-builder]").forEach(function (root) {
      if (root.dataset.ready) return;
      root.dataset.ready = "1";
      try {
        new Builder(root);
      } catch (error) {
        root.textContent = "The filter builder could not start: " + error.message;
      }
    });
  }

  // The list form sends every panel input; leave the empty ones out so the pushed URL shows
  // only what filters the list.
  document.addEventListener("htmx:configRequest", function (event) {
    if (!event.detail.elt || event.detail.elt.id !== "list-form") return;
    var params = event.detail.parameters;
    var names = params instanceof FormData ? Array.from(new Set(params.keys())) : Object.keys(params);
    names.forEach(function (name) {
      var values = params instanceof FormData ? params.getAll(name) : [].concat(params[name]);
      if (values.every(function (v) { return v === ""; })) {
        if (params instanceof FormData) params.delete(name); else delete params[name];
      }
    });
  });

  // A filter applied through HTMX reports its error out of band: mark the condition it names.
  document.addEventListener("htmx:oobAfterSwap", function (event) {
    if (!event.detail.target || event.detail.target.id !== "builder-error") return;
    var box = document.getElementById("builder-error");  // the swapped-in copy
    var number = box.getAttribute("data-error-condition") || "";
    document.querySelectorAll(".builder-condition").forEach(function (row) {
      row.classList.toggle("is-invalid", number !== "" && row.getAttribute("data-condition") === number);
    });
  });

  document.addEventListener("DOMContentLoaded", function () { boot(document); });
  // Switching views swaps the list (builder included) in place.
  document.addEventListener("htmx:afterSettle", function (event) { boot(event.target); });
})();
