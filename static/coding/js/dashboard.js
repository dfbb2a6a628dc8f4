// Dashboards: draw each chart from the JSON config beside its canvas (Chart.js, vendored),
// redraw after htmx swaps the result part of the page, download a chart as PNG, and tick
// every search hit at once.
(function () {
  "use strict";

  // PNGs get a white background instead of a transparent one.
  const whiteBackground = {
    id: "whiteBackground",
    beforeDraw(chart) {
      const ctx = chart.canvas.getContext("2d");
      ctx.save();
      ctx.globalCompositeOperation = "destination-over";
      ctx.fillStyle = "#ffffff";
      ctx.fillRect(0, 0, chart.width, chart.height);
      ctx.restore();
    },
  };

  function draw(root) {
    if (typeof window.Chart === "undefined") return;
    root.querySelectorAll("canvas[data-chart]").forEach((canvas) => {
      if (window.Chart.getChart(canvas)) return;
      const source = document.getElementById(canvas.dataset.chart);
      if (!source) return;
      const config = JSON.parse(source.textContent);
      delete config.title;
      config.options = Object.assign({ responsive: true, maintainAspectRatio: false, animation: false }, config.options);
      config.plugins = [whiteBackground];
      new window.Chart(canvas, config);
    });
  }

  function forget(root) {
    if (typeof window.Chart === "undefined") return;
    root.querySelectorAll("canvas[data-chart]").forEach((canvas) => {
      const chart = window.Chart.getChart(canvas);
      if (chart) chart.destroy();
    });
  }

  document.addEventListener("DOMContentLoaded", () => draw(document));
  document.addEventListener("htmx:load", (event) => draw(event.detail.elt));
  document.addEventListener("htmx:beforeCleanupElement", (event) => {
    if (event.detail.elt.querySelectorAll) forget(event.detail.elt);
  });

  // A filter the server refuses answers 400 with its message: show it in place.
  document.addEventListener("htmx:beforeSwap", (event) => {
    if (event.detail.xhr.status === 400 && event.detail.target.id === "dashboard-body") {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });

  // The tabs sit outside the redrawn part: keep their links on the filters now in the URL.
  document.addEventListener("htmx:pushedIntoHistory", () => {
    document.querySelectorAll(".dashboard-tabs a").forEach((link) => {
      link.search = window.location.search;
    });
  });

  document.addEventListener("click", (event) => {
    const button = event.target.closest("[data-chart-png]");
    if (!button || typeof window.Chart === "undefined") return;
    const chart = window.Chart.getChart(document.getElementById(button.dataset.chartPng));
    if (!chart) return;
    const link = document.createElement("a");
    link.href = chart.toBase64Image("image/png", 1);
    link.download = button.dataset.filename || "chart.png";
    document.body.appendChild(link);
    link.click();
    link.remove();
  });

  document.addEventListener("change", (event) => {
    const all = event.target.closest("[data-check-all]");
    if (!all) return;
    const form = all.closest("form");
    form.querySelectorAll(`input[type="checkbox"][name="${all.dataset.checkAll}"]`).forEach((box) => {
      box.checked = all.checked;
    });
  });
})();
