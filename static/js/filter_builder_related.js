// The filter builder's inputs for related conditions (contacts.filters.related): a contact's
// orders ("has an order with status Paid in the last 90 days", "total paid greater than
// 1,000 EUR", "number of orders") and its associated custom-object records ("associated
// with a Course where Level is Advanced"). Their value is an object; filter_builder.js hands
// the value input of such a field (schema field with `related: true`) to this module. The
// server checks every part again and names the condition when something is wrong.
(function () {
  "use strict";

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

  function isObject(value) {
    return value !== null && typeof value === "object" && !Array.isArray(value);
  }

  function multi(label, pairs, chosen, onChange) {
    var select = el("select", { multiple: "", size: "3", "aria-label": label });
    var picked = Array.isArray(chosen) ? chosen : (chosen ? [chosen] : []);
    pairs.forEach(function (pair) { select.appendChild(option(pair[0], pair[1], picked.indexOf(pair[0]) !== -1)); });
    select.addEventListener("change", function () {
      onChange(Array.prototype.filter.call(select.options, function (o) { return o.selected; }).map(function (o) { return o.value; }));
    });
    return select;
  }

  function field(type, label, value, onChange, extra) {
    var attrs = { type: type, "aria-label": label };
    Object.keys(extra || {}).forEach(function (name) { attrs[name] = extra[name]; });
    var input = el("input", attrs);
    input.value = value === undefined || value === null ? "" : value;
    var update = function () { onChange(input.value); };
    input.addEventListener("change", update);
    input.addEventListener("input", update);
    return input;
  }

  function setOrDrop(value, key, raw) {
    if (raw === "" || raw === undefined || raw === null || (Array.isArray(raw) && !raw.length)) delete value[key];
    else value[key] = raw;
  }

  // Status, source and a period: the options of "has an order" and "number of orders".
  function orderOptions(box, value, data, number, commit, rerender) {
    box.appendChild(multi("Order status (any of) for condition " + number, data.statuses || [], value.status, function (picked) {
      setOrDrop(value, "status", picked); commit();
    }));
    box.appendChild(multi("Order source (any of) for condition " + number, data.sources || [], value.source, function (picked) {
      setOrDrop(value, "source", picked); commit();
    }));
    var mode = value.days ? "days" : (value.from || value.to ? "dates" : "any");
    var period = el("select", { "aria-label": "Order date for condition " + number });
    [["any", "at any time"], ["days", "in the last N days"], ["dates", "between dates"]].forEach(function (pair) {
      period.appendChild(option(pair[0], pair[1], pair[0] === mode));
    });
    period.addEventListener("change", function () {
      delete value.days; delete value.from; delete value.to;
      if (period.value === "days") value.days = 30;
      commit(); rerender();
    });
    box.appendChild(period);
    if (mode === "days") {
      box.appendChild(field("number", "Number of days for condition " + number, value.days, function (raw) {
        setOrDrop(value, "days", raw === "" ? "" : Number(raw)); commit();
      }, { min: "1", max: "3650", step: "1", placeholder: "days" }));
    } else if (mode === "dates") {
      box.appendChild(field("date", "Orders from (date) for condition " + number, value.from, function (raw) {
        setOrDrop(value, "from", raw); commit();
      }));
      box.appendChild(field("date", "Orders to (date) for condition " + number, value.to, function (raw) {
        setOrDrop(value, "to", raw); commit();
      }));
    }
  }

  function currencyInput(box, value, data, number, commit) {
    var listId = "related-currencies-" + number;
    var list = el("datalist", { id: listId });
    (data.currencies || []).forEach(function (code) { list.appendChild(el("option", { value: code })); });
    if (!value.currency && data.base_currency) value.currency = data.base_currency;
    box.appendChild(field("text", "Currency for condition " + number, value.currency, function (raw) {
      setOrDrop(value, "currency", raw.trim().toUpperCase()); commit();
    }, { list: listId, maxlength: "3", size: "4", autocomplete: "off" }));
    box.appendChild(list);
  }

  function amountInput(label, key, value, commit) {
    return field("number", label, value[key], function (raw) { setOrDrop(value, key, raw); commit(); }, { min: "0", step: "0.01" });
  }

  function totalPaid(box, condition, value, data, number, commit) {
    if (condition.op === "between") {
      delete value.amount;
      box.appendChild(amountInput("Lowest total for condition " + number, "min", value, commit));
      box.appendChild(el("span", { text: "and" }));
      box.appendChild(amountInput("Highest total for condition " + number, "max", value, commit));
    } else {
      delete value.min; delete value.max;
      box.appendChild(amountInput("Amount for condition " + number, "amount", value, commit));
    }
    currencyInput(box, value, data, number, commit);
  }

  function typeOf(data, id) {
    return (data.types || []).filter(function (t) { return t.id === id; })[0] || null;
  }

  function whereValue(box, where, spec, number, commit) {
    var label = "Value of " + spec.label + " for condition " + number;
    var input;
    if (spec.kind === "list" && where.op === "any_of") {
      input = multi(label, spec.choices.map(function (c) { return [c, c]; }), where.value, function (picked) {
        where.value = picked; commit();
      });
    } else if (spec.kind === "list" || spec.kind === "checkbox") {
      var pairs = spec.kind === "list" ? spec.choices.map(function (c) { return [c, c]; }) : [["true", "Yes"], ["false", "No"]];
      input = el("select", { "aria-label": label });
      input.appendChild(option("", "Choose…", where.value === undefined || where.value === ""));
      pairs.forEach(function (pair) { input.appendChild(option(pair[0], pair[1], String(where.value) === pair[0])); });
      input.addEventListener("change", function () {
        where.value = spec.kind === "checkbox" ? input.value === "true" : input.value;
        if (input.value === "") delete where.value;
        commit();
      });
    } else {
      var type = spec.kind === "date" ? "date" : (["number", "currency", "percent"].indexOf(spec.kind) !== -1 ? "number" : "text");
      input = field(type, label, where.value, function (raw) {
        where.value = type === "number" && raw !== "" ? Number(raw) : raw; commit();
      }, type === "number" ? { step: "any" } : { maxlength: "200" });
    }
    box.appendChild(input);
  }

  function association(box, value, data, number, commit, rerender) {
    var types = data.types || [];
    var typeSelect = el("select", { "aria-label": "Record type for condition " + number });
    typeSelect.appendChild(option("", "Choose a record type…", !value.type));
    types.forEach(function (t) { typeSelect.appendChild(option(t.id, t.name, t.id === value.type)); });
    typeSelect.addEventListener("change", function () {
      setOrDrop(value, "type", typeSelect.value); delete value.where; commit(); rerender();
    });
    box.appendChild(typeSelect);
    var chosen = typeOf(data, value.type);
    if (!chosen || !chosen.fields.length) return;
    var where = isObject(value.where) ? value.where : null;
    var fieldSelect = el("select", { "aria-label": "Record field for condition " + number });
    fieldSelect.appendChild(option("", "any record", !where));
    chosen.fields.forEach(function (f) { fieldSelect.appendChild(option(f.key, "where " + f.label, where && where.field === f.key)); });
    fieldSelect.addEventListener("change", function () {
      var spec = chosen.fields.filter(function (f) { return f.key === fieldSelect.value; })[0];
      if (spec) value.where = { field: spec.key, op: spec.ops[0][0] };
      else delete value.where;
      commit(); rerender();
    });
    box.appendChild(fieldSelect);
    if (!where) return;
    var spec = chosen.fields.filter(function (f) { return f.key === where.field; })[0];
    if (!spec) return;
    var opSelect = el("select", { "aria-label": "Record field operator for condition " + number });
    spec.ops.forEach(function (pair) { opSelect.appendChild(option(pair[0], pair[1], pair[0] === where.op)); });
    opSelect.addEventListener("change", function () {
      var wasList = where.op === "any_of";
      where.op = opSelect.value;
      if (wasList !== (where.op === "any_of")) delete where.value;
      commit(); rerender();
    });
    box.appendChild(opSelect);
    whereValue(box, where, spec, number, commit);
  }

  // The value input of a related condition: a group of inputs that edit `condition.value`.
  function valueInput(builder, condition, number, fieldSpec) {
    if (!isObject(condition.value)) {
      condition.value = {};
      if (!builder.input.disabled) builder.sync();
    }
    var value = condition.value;
    var data = (builder.schema.related || {})[condition.field] || {};
    var box = el("span", { className: "builder-related", role: "group", "aria-label": fieldSpec.label + " options for condition " + number });
    var commit = function () { builder.sync(); };
    var rerender = function () {
      builder.render();
      var again = builder.root.querySelector('[data-condition="' + number + '"] .builder-related select');
      if (again) again.focus();
    };
    if (condition.field === "orders") {
      orderOptions(box, value, data, number, commit, rerender);
    } else if (condition.field === "orders.count") {
      box.appendChild(field("number", "Number of orders for condition " + number, value.count, function (raw) {
        setOrDrop(value, "count", raw === "" ? "" : Number(raw)); commit();
      }, { min: "0", step: "1" }));
      orderOptions(box, value, data, number, commit, rerender);
    } else if (condition.field === "orders.total_paid") {
      totalPaid(box, condition, value, data, number, commit);
    } else if (condition.field === "objects") {
      association(box, value, data, number, commit, rerender);
    }
    return box;
  }

  window.FilterBuilderRelated = { valueInput: valueInput };
})();
