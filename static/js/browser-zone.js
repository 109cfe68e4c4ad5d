// Onboarding: start the time zone field at the browser's own zone, when it is one the
// server knows (listed in the field's datalist). Without JavaScript the field keeps the
// zone stored on the account, so the form works either way.
(function () {
  "use strict";
  var input = document.querySelector("input[data-browser-zone]");
  if (!input) return;
  var zone;
  try {
    zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  } catch (error) {
    return;
  }
  // Browsers may report an older alias; the server lists the current IANA names.
  var current = {
    "Asia/Calcutta": "Asia/Kolkata",
    "Asia/Katmandu": "Asia/Kathmandu",
    "Asia/Rangoon": "Asia/Yangon",
    "Asia/Saigon": "Asia/Ho_Chi_Minh",
    "Europe/Kiev": "Europe/Kyiv",
    "America/Buenos_Aires": "America/Argentina/Buenos_Aires",
  };
  zone = current[zone] || zone;
  var list = input.list;
  var known = false;
  for (var i = 0; list && i < list.options.length; i++) {
    if (list.options[i].value === zone) known = true;
  }
  if (!known || zone === input.value) return;
  var before = input.value;
  input.value = zone;
  var note = document.getElementById("tz-browser");
  if (note) {
    note.textContent =
      "Filled in from your browser: " + zone + (before ? " (it was " + before + ")" : "") +
      ". Change it if that is not where you are.";
  }
})();
