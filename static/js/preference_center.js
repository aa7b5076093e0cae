// The public pages (preference center, unsubscribe, double opt-in) take the organization's
// brand colour from <body data-brand-color="#rrggbb">. The CSP allows no style attribute,
// so the colour is set here, with a readable text colour on top of it.
(function () {
  "use strict";
  var body = document.body;
  var color = body ? body.getAttribute("data-brand-color") || "" : "";
  if (!/^#[0-9a-fA-F]{6}$/.test(color)) {
    return;
  }
  var channel = function (offset) {
    var value = parseInt(color.substr(offset, 2), 16) / 255;
    return value <= 0.03928 ? value / 12.92 : Math.pow((value + 0.055) / 1.055, 2.4);
  };
  var luminance = 0.2126 * channel(1) + 0.7152 * channel(3) + 0.0722 * channel(5);
  body.style.setProperty("--brand", color);
  body.style.setProperty("--brand-text", luminance > 0.4 ? "#111111" : "#ffffff");
})();
