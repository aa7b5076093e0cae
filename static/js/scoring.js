// Settings → Lead scoring: the rule form offers only the operators that fit the chosen field,
// and the field's choices as suggestions (the schema comes from json_script "rule-schema").
(function () {
  "use strict";
  var form = document.querySelector("[data-rule-form]");
  var schemaEl = document.getElementById("rule-schema");
  if (!form || !schemaEl) return;
  var schema = JSON.parse(schemaEl.textContent);
  var fieldSelect = form.querySelector("select[name=field]");
  var opSelect = form.querySelector("select[name=op]");
  var valueInput = form.querySelector("input[name=value]");
  var options = document.getElementById("rule-value-options");
  var byKey = {};
  schema.fields.forEach(function (f) { byKey[f.key] = f; });
  function sync() {
    var field = byKey[fieldSelect.value];
    if (!field) return;
    var allowed = (schema.ops[field.type] || []).map(function (pair) { return pair[0]; });
    Array.prototype.forEach.call(opSelect.options, function (option) {
      option.hidden = option.disabled = allowed.indexOf(option.value) === -1;
    });
    if (allowed.indexOf(opSelect.value) === -1 && allowed.length) opSelect.value = allowed[0];
    var valueless = opSelect.value === "is_empty" || opSelect.value === "is_not_empty";
    valueInput.disabled = valueless;
    options.innerHTML = "";
    (field.choices || []).forEach(function (pair) {
      var option = document.createElement("option");
      option.value = pair[0];
      option.label = pair[1];
      options.appendChild(option);
    });
    valueInput.setAttribute("list", "rule-value-options");
  }
  fieldSelect.addEventListener("change", sync);
  opSelect.addEventListener("change", sync);
  sync();
})();
