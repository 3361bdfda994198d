// Progressive enhancement only: every page works without this file.
// A link with data-dialog="<id>" opens that <dialog> instead of navigating to its own page.
(function () {
  "use strict";
  document.querySelectorAll("a[data-dialog]").forEach(function (link) {
    var dialog = document.getElementById(link.getAttribute("data-dialog"));
    if (!dialog || typeof dialog.showModal !== "function") {
      return;
    }
    link.setAttribute("aria-haspopup", "dialog");
    link.addEventListener("click", function (event) {
      event.preventDefault();
      dialog.showModal(); // focuses the first control (Close); Esc closes it
    });
    dialog.querySelectorAll("[data-close-dialog]").forEach(function (button) {
      button.addEventListener("click", function (event) {
        event.preventDefault();
        dialog.close();
        link.focus();
      });
    });
  });

  // A partial-refund amount is only needed (and only enabled) when "Partial refund" is chosen.
  document.querySelectorAll("form[data-refund-form]").forEach(function (form) {
    var amount = form.querySelector("input[name=amount]");
    if (!amount) {
      return;
    }
    function sync() {
      var choice = form.querySelector("input[name=refund]:checked");
      var partial = Boolean(choice && choice.value === "partial");
      amount.required = partial;
      amount.disabled = !partial; // a disabled field is not submitted: no stray amount
    }
    form.addEventListener("change", sync);
    sync();
  });

  // Forms marked data-once disable their submit buttons after the first submit (double clicks).
  document.querySelectorAll("form[data-once]").forEach(function (form) {
    form.addEventListener("submit", function () {
      window.setTimeout(function () {
        form.querySelectorAll("button[type=submit]").forEach(function (button) {
          button.disabled = true;
        });
      }, 0);
    });
  });
  // Coming back with the Back button restores the page from cache: enable its buttons again.
  window.addEventListener("pageshow", function (event) {
    if (event.persisted) {
      document.querySelectorAll("form[data-once] button[type=submit]").forEach(function (button) {
        button.disabled = false;
      });
    }
  });
})();
