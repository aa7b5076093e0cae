// Loaded in <head> without defer: marks the page as scripted before first paint, so no-JS
// fallbacks (.no-js-only) never flash.
document.documentElement.classList.add("js");
