/* Bar charts of each numeric metric across the compared runs, drawn by Chart.js (vendored).
 * Data: <script type="application/json" id="chart-data"> (HTML-safe JSON from the server). */
(function () {
  "use strict";
  var source = document.getElementById("chart-data");
  var holder = document.getElementById("charts");
  if (!source || !holder || typeof Chart === "undefined") {
    return;
  }
  var data = JSON.parse(source.textContent);
  var palette = ["#4878d0", "#ee854a", "#6acc64", "#d65f5f", "#956cb4", "#8c613c", "#dc7ec0"];
  data.charts.forEach(function (chart) {
    var figure = document.createElement("figure");
    var canvas = document.createElement("canvas");
    canvas.width = 320;
    canvas.height = 200;
    canvas.setAttribute("role", "img");
    canvas.setAttribute("aria-label", chart.name);
    var caption = document.createElement("figcaption");
    caption.textContent = chart.name;
    figure.appendChild(canvas);
    figure.appendChild(caption);
    holder.appendChild(figure);
    new Chart(canvas, {
      type: "bar",
      data: {
        labels: data.labels,
        datasets: [{
          label: chart.name,
          data: chart.values,
          backgroundColor: chart.values.map(function (_, i) { return palette[i % palette.length]; })
        }]
      },
      options: {
        responsive: false,
        animation: false,
        plugins: { legend: { display: false } },
        scales: { y: { beginAtZero: true } }
      }
    });
  });
  holder.setAttribute("data-charts", String(data.charts.length));
})();
