// Progressive enhancement: a button with data-copy="<input id>" copies that input's value and
// says so in the live region data-copy-status="<input id>". Without JavaScript the read-only
// field can still be selected and copied by hand.
(function () {
  "use strict";
  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    var id = button.getAttribute("data-copy");
    var input = document.getElementById(id);
    var status = document.querySelector('[data-copy-status="' + id + '"]');
    if (!input) {
      return;
    }
    button.hidden = false;
    button.addEventListener("click", function () {
      function done(message) {
        if (status) {
          status.textContent = message;
        }
      }
      input.select();
      if (navigator.clipboard && navigator.clipboard.writeText) {
        navigator.clipboard.writeText(input.value).then(
          function () { done("Link copied."); },
          function () { done("Press Ctrl+C (or ⌘C) to copy the selected link."); }
        );
      } else {
        done("Press Ctrl+C (or ⌘C) to copy the selected link.");
      }
    });
  });
})();
