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

  // <select data-shows-group>: the elements of its form marked data-for-group="g" are shown only
  // while the chosen option has data-group="g" (without JavaScript, every one is shown).
  function showGroups(select) {
    var option = select.options[select.selectedIndex];
    var group = option ? option.getAttribute("data-group") : null;
    select.form.querySelectorAll("[data-for-group]").forEach(function (el) {
      el.hidden = group !== null && el.getAttribute("data-for-group").split(" ").indexOf(group) < 0;
    });
  }
  document.addEventListener("change", function (event) {
    if (event.target.matches("select[data-shows-group]")) { showGroups(event.target); }
  });
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("select[data-shows-group]").forEach(showGroups);
  });

  // <select data-autosubmit>: send its form on change.
  document.addEventListener("change", function (event) {
    if (event.target.matches("[data-autosubmit]") && event.target.form) {
      event.target.form.requestSubmit();
    }
  });
})();

// Alpine.js components (its CSP build: components are registered here, templates only name them).
document.addEventListener("alpine:init", function () {
  // <div x-data="copyable"><code x-ref="text">…</code><button @click="copy">: copy a value once shown.
  window.Alpine.data("copyable", function () {
    return {
      copied: false,
      copy: function () {
        var self = this;
        navigator.clipboard.writeText(this.$refs.text.textContent.trim()).then(function () { self.copied = true; });
      }
    };
  });
});
