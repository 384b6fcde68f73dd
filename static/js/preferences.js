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

// Fields with a limit (data-limit, in place of a maxlength that would cut pasted text without a
// word): "120 / 500 characters" under the field as the reader types, and how many too many.
(function () {
  "use strict";

  function length(text) {
    // As the server counts: code points, and a line break arrives as two characters (CR LF).
    var breaks = text.match(/\n/g);
    return Array.from(text).length + (breaks ? breaks.length : 0);
  }

  Array.prototype.forEach.call(document.querySelectorAll("[data-limit]"), function (field) {
    var limit = parseInt(field.getAttribute("data-limit"), 10);
    var count = document.createElement("p");
    count.className = "count";
    count.id = field.id + "_count";
    count.setAttribute("aria-live", "polite");
    field.insertAdjacentElement("afterend", count);
    var described = field.getAttribute("aria-describedby");
    field.setAttribute("aria-describedby", (described ? described + " " : "") + count.id);
    function update() {
      var used = length(field.value);
      var over = used - limit;
      count.textContent = used.toLocaleString("en") + " / " + limit.toLocaleString("en") + " characters" +
        (over > 0 ? ": " + over.toLocaleString("en") + " too many" : "");
      count.classList.toggle("over", over > 0);
    }
    field.addEventListener("input", update);
    update();
  });
})();
