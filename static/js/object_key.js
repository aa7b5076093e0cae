// Settings → Custom objects: while a new type's name (or a new field's label) is typed, its
// key field shows the key the server would make from it, until someone types a key of their
// own. Without JavaScript an empty key is made from the name on the server, the same way.
(function () {
  "use strict";

  function suggest(text, fallback) {
    var key = (text || "").normalize("NFKD").replace(/[\u0300-\u036f]/g, "")
      .toLowerCase().replace(/[^a-z0-9]+/g, "_").replace(/^_+|_+$/g, "");
    if (!key) return "";
    if (!/^[a-z]/.test(key)) key = fallback + "_" + key;
    return key.slice(0, 60).replace(/_+$/, "");
  }

  function wire(source) {
    var name = source.getAttribute("data-key-source");
    var target = document.querySelector('[data-key-target="' + name + '"]');
    if (!target) return;
    var fallback = name === "type-key" ? "object" : "field";
    var touched = target.value !== "";
    target.addEventListener("input", function () { touched = target.value !== ""; });
    source.addEventListener("input", function () {
      if (!touched) target.value = suggest(source.value, fallback);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-key-source]").forEach(wire);
  });
})();
