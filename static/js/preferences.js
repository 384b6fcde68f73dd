// Signup and manage pages: pre-fill the time zone from the browser, show the weekday only for
// weekly digests. The page works without it.
(function () {
  "use strict";

  var zone = document.querySelector("select[data-browser-timezone]");
  if (zone && window.Intl && Intl.DateTimeFormat) {
    var browserZone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    var known = Array.prototype.some.call(zone.options, function (option) {
      return option.value === browserZone;
    });
    if (browserZone && known) {
      zone.value = browserZone;
    }
  }

  var weekday = document.querySelector(".weekday");
  var radios = document.querySelectorAll("input[name=frequency]");
  function showWeekday() {
    var weekly = document.querySelector("input[name=frequency][value=weekly]");
    if (weekday && weekly) {
      weekday.hidden = !weekly.checked;
    }
  }
  Array.prototype.forEach.call(radios, function (radio) {
    radio.addEventListener("change", showWeekday);
  });
  showWeekday();
})();
