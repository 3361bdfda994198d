// The week view's day links (narrow screens show one day): switch days without reloading.
// Progressive enhancement only: without this file each day link loads ?week=<that day>.
(function () {
  "use strict";
  var week = document.querySelector("[data-week]");
  var picker = week && week.querySelector("[data-day-picker]");
  if (!picker || !window.history || typeof window.history.replaceState !== "function") {
    return;
  }

  function show(link) {
    var day = link.getAttribute("data-day");
    week.querySelectorAll(".week-day").forEach(function (column) {
      column.classList.toggle("week-day--selected", column.getAttribute("data-day") === day);
    });
    picker.querySelectorAll("a[data-day]").forEach(function (other) {
      if (other === link) {
        other.setAttribute("aria-current", "true");
      } else {
        other.removeAttribute("aria-current");
      }
    });
    // Previous and next week keep the chosen weekday, as the reloaded page would.
    ["prev", "next"].forEach(function (which) {
      var weekLink = week.querySelector("[data-week-link=" + which + "]");
      var target = link.getAttribute("data-" + which);
      if (weekLink && target) {
        weekLink.setAttribute("href", "?week=" + target);
      }
    });
    var field = week.querySelector("input[name=week]");
    if (field) {
      field.value = day;
    }
    window.history.replaceState(null, "", link.getAttribute("href"));
  }

  picker.addEventListener("click", function (event) {
    var link = event.target.closest("a[data-day]");
    if (!link || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) {
      return;
    }
    event.preventDefault();
    show(link);
  });
})();
