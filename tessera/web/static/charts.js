// Draws every <div class="chart" data-spec="{vega-lite spec}"> with Vega-Lite, in Vega's CSP-safe
// mode: expressions are parsed to an AST and run by vega-interpreter (no eval, no new Function).
// Charts swapped in by HTMX are drawn too.
(function () {
  "use strict";

  function draw(root) {
    if (!window.vegaEmbed || !window.vegaInterpreter) { return; }
    (root || document).querySelectorAll(".chart[data-spec]:not([data-drawn])").forEach(function (el) {
      el.setAttribute("data-drawn", "1");
      var spec = JSON.parse(el.getAttribute("data-spec"));
      window.vegaEmbed(el, spec, {
        actions: false, renderer: "svg", ast: true, defaultStyle: false,
        // vega-tooltip would inject a <style> element (blocked by the CSP): app.css styles it
        tooltip: { disableDefaultStyle: true },
        expr: window.vegaInterpreter.expressionInterpreter
      }).catch(function (err) {
        el.textContent = String(err);
        el.classList.add("chart-error");
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () { draw(document); });
  document.addEventListener("htmx:afterSettle", function (event) { draw(event.target); });
  window.tesseraCharts = { draw: draw };
})();
