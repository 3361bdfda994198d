// The calendar feed's "Copy address" button (templates/calendars/_feed_instructions.html).
// Progressive enhancement: without this file the address is still there to select and copy.
(function () {
  "use strict";
  var button = document.querySelector("[data-copy-feed]");
  if (!button) { return; }
  var input = document.getElementById(button.getAttribute("data-copy-feed"));
  var status = document.getElementById("calendar-feed-copy-status");
  button.hidden = false;
  button.addEventListener("click", function () {
    function done(ok) { status.textContent = ok ? "Copied." : "Select the address and copy it."; }
    input.select();
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(input.value).then(function () { done(true); }, function () { done(false); });
    } else {
      try { done(document.execCommand("copy")); } catch (e) { done(false); }
    }
  });
})();
