// Progressive enhancement: under 600 px the main navigation folds behind a "Menu" button.
// Without this file the button stays hidden and the navigation stays visible.
(function () {
  "use strict";
  var button = document.querySelector("[data-nav-toggle]");
  if (!button) {
    return;
  }
  var list = document.getElementById(button.getAttribute("aria-controls"));
  if (!list) {
    return;
  }
  document.documentElement.classList.add("js-nav");
  button.setAttribute("aria-expanded", "false");
  button.addEventListener("click", function () {
    var open = button.getAttribute("aria-expanded") !== "true";
    button.setAttribute("aria-expanded", open ? "true" : "false");
    list.classList.toggle("is-open", open);
  });
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && button.getAttribute("aria-expanded") === "true") {
      button.setAttribute("aria-expanded", "false");
      list.classList.remove("is-open");
      button.focus();
    }
  });
})();
