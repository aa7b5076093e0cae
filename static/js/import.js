// Contacts → Import: small enhancements over pages that work without JavaScript.
// - the upload drop zone highlights while a file is dragged over it, names the chosen file
//   and warns before uploading a file over the limit;
// - "Reset to suggestions" restores the suggested targets (and kinds of new custom fields)
//   in place instead of reloading;
// - the Opted In warning shows as soon as that consent status is chosen.
(function () {
  "use strict";

  function formatSize(bytes) {
    if (bytes >= 1024 * 1024) return (bytes / (1024 * 1024)).toFixed(1) + " MB";
    if (bytes >= 1024) return Math.round(bytes / 1024) + " KB";
    return bytes + " bytes";
  }

  function setUpDropzone(form) {
    var zone = form.querySelector("[data-dropzone]");
    var input = zone && zone.querySelector("input[type=file]");
    if (!input) return;
    var label = zone.querySelector("[data-dropzone-file]");
    var sizeError = form.querySelector("[data-size-error]");
    var maxBytes = parseInt(form.dataset.maxMb || "0", 10) * 1024 * 1024;

    function showChoice() {
      var file = input.files && input.files[0];
      zone.classList.toggle("has-file", Boolean(file));
      label.textContent = file ? file.name + " · " + formatSize(file.size) : "";
      var tooBig = Boolean(file && maxBytes && file.size > maxBytes);
      sizeError.hidden = !tooBig;
      sizeError.textContent = tooBig
        ? "This file is " + formatSize(file.size) + "; the limit is " + form.dataset.maxMb + " MB."
        : "";
      input.setCustomValidity(tooBig ? sizeError.textContent : "");
    }

    ["dragenter", "dragover"].forEach(function (name) {
      zone.addEventListener(name, function () { zone.classList.add("is-dragover"); });
    });
    ["dragleave", "drop"].forEach(function (name) {
      zone.addEventListener(name, function () { zone.classList.remove("is-dragover"); });
    });
    input.addEventListener("change", showChoice);
    showChoice();
  }

  function setUpMapping(form) {
    var reset = document.querySelector("[data-reset-mapping]");
    var selects = form.querySelectorAll("select[data-suggested]");

    function syncSuggestedLabel(select) {
      var row = select.closest("[data-column-row]");
      var note = row && row.querySelector("[data-suggested-label]");
      if (note) note.hidden = select.value === select.dataset.suggested;
    }

    selects.forEach(function (select) {
      select.addEventListener("change", function () { syncSuggestedLabel(select); });
    });
    if (reset) {
      reset.addEventListener("click", function (event) {
        event.preventDefault();
        selects.forEach(function (select) {
          select.value = select.dataset.suggested;
          syncSuggestedLabel(select);
        });
        form.querySelectorAll("select[data-suggested-kind]").forEach(function (select) {
          select.value = select.dataset.suggestedKind;
        });
      });
    }

    var consent = form.querySelector("select[name=default_consent_status]");
    var warning = form.querySelector("[data-consent-warning]");
    if (consent && warning) {
      var sync = function () { warning.hidden = consent.value !== "opted_in"; };
      consent.addEventListener("change", sync);
      sync();
    }
  }

  function init() {
    var upload = document.querySelector("[data-upload-form]");
    if (upload) setUpDropzone(upload);
    var mapping = document.querySelector("[data-mapping-form]");
    if (mapping) setUpMapping(mapping);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
