// Tessera's web app: small behaviours that the pages declare with data-* attributes
// (no inline script: the Content-Security-Policy is default-src 'self').
(function () {
  "use strict";

  // <button data-confirm="text">: ask before sending the form.
  document.addEventListener("click", function (event) {
    var el = event.target.closest("[data-confirm]");
    if (el && !window.confirm(el.getAttribute("data-confirm"))) {
      event.preventDefault();
      event.stopPropagation();
    }
  }, true);

  // <select data-autosubmit>: send its form on change.
  document.addEventListener("change", function (event) {
    if (event.target.matches("[data-autosubmit]") && event.target.form) {
      event.target.form.requestSubmit();
    }
  });
})();
