// Reads a chosen JSON key file into the form's textarea: the server accepts only
// url-encoded forms, so the file is sent as text. Without JavaScript, paste the key.
document.addEventListener("change", function (event) {
  var input = event.target;
  if (!input.matches || !input.matches("input[type=file][data-into]")) return;
  var target = document.getElementById(input.getAttribute("data-into"));
  var file = input.files && input.files[0];
  if (!target || !file) return;
  file.text().then(function (text) { target.value = text; });
});
