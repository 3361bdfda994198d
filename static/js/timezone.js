// Sign-up: preselect the browser's timezone in <select data-detect-timezone> when the list has
// it and the person has not chosen one yet (a form sent back with errors keeps their choice).
// Without JavaScript, or for an unknown zone, the select stays on UTC and can be changed.
(function () {
  "use strict";
  var detected;
  try {
    detected = Intl.DateTimeFormat().resolvedOptions().timeZone;
  } catch (error) {
    return;
  }
  if (!detected) {
    return;
  }
  document.querySelectorAll("select[data-detect-timezone]").forEach(function (select) {
    if (select.hasAttribute("data-chosen")) {
      return;
    }
    var known = Array.prototype.some.call(select.options, function (option) {
      return option.value === detected;
    });
    if (known) {
      select.value = detected;
    }
  });
})();
