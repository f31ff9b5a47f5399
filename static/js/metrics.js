// Flow metrics charts (/metrics/): drawn with the vendored Chart.js from the #metrics-data JSON
// the page carries. Every chart has a table on the page with the same figures, so the canvases
// are decoration for sighted readers; a throughput bar opens the list of tasks behind it.
(function () {
  "use strict";

  const source = document.getElementById("metrics-data");
  if (!source || typeof window.Chart === "undefined") return;
  const data = JSON.parse(source.textContent);
  if (!data.pods || !data.pods.length) return;

  const css = getComputedStyle(document.documentElement);
  const colour = (name, fallback) => (css.getPropertyValue(name) || "").trim() || fallback;
  const palette = [
    colour("--accent", "#2f63d0"),
    colour("--done", "#2e8b57"),
    colour("--active", "#c27b0a"),
    colour("--cont", "#7a4fc9"),
    colour("--danger", "#c0392b"),
    "#1a9fb0",
    "#8a6d3b",
    "#d35ea5",
  ];
  const text = colour("--text", "#1c2330");
  const line = colour("--line", "#d9dde4");
  Chart.defaults.color = text;
  Chart.defaults.borderColor = line;
  Chart.defaults.font.family = colour("--font", "system-ui, sans-serif");
  Chart.defaults.animation = false;

  const hours = (seconds) => (seconds == null ? null : Math.round((seconds / 3600) * 100) / 100);
  const days = data.pods[0].throughput.map((t) => t.day);

  // Throughput: one stacked bar per day, a colour per pod.
  const throughput = document.getElementById("chart-throughput");
  if (throughput) {
    new Chart(throughput, {
      type: "bar",
      data: {
        labels: days,
        datasets: data.pods.map((pod, i) => ({
          label: pod.pod,
          data: pod.throughput.map((t) => t.done),
          backgroundColor: palette[i % palette.length],
        })),
      },
      options: {
        maintainAspectRatio: false,
        scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } } },
        onClick(event, elements, chart) {
          if (!elements.length) return;
          const { datasetIndex, index } = elements[0];
          const pod = chart.data.datasets[datasetIndex].label;
          const day = chart.data.labels[index];
          const url = new URL(data.doneUrl, window.location.href);
          url.searchParams.set("pod", pod);
          url.searchParams.set("day", day);
          window.location.assign(url.toString());
        },
        onHover(event, elements) {
          event.native.target.style.cursor = elements.length ? "pointer" : "default";
        },
      },
    });
  }

  // Times: p50 and p85 of cycle, lead and both handoff waits, in hours, per pod.
  const times = document.getElementById("chart-times");
  if (times) {
    const series = [
      ["Cycle p50", (p) => p.cycle_time_s.p50, 0, 1],
      ["Cycle p85", (p) => p.cycle_time_s.p85, 0, 0.45],
      ["Lead p50", (p) => p.lead_time_s.p50, 1, 1],
      ["Lead p85", (p) => p.lead_time_s.p85, 1, 0.45],
      ["Wait sync p50", (p) => p.handoff_wait_s.sync.p50, 2, 1],
      ["Wait async p50", (p) => p.handoff_wait_s.async.p50, 3, 1],
    ];
    new Chart(times, {
      type: "bar",
      data: {
        labels: data.pods.map((p) => p.pod),
        datasets: series.map(([label, pick, c, alpha]) => ({
          label,
          data: data.pods.map((p) => hours(pick(p))),
          backgroundColor: palette[c],
          borderColor: palette[c],
          borderWidth: 1,
          ...(alpha < 1 ? { backgroundColor: palette[c] + "73" } : {}),
        })),
      },
      options: {
        maintainAspectRatio: false,
        scales: { y: { beginAtZero: true, title: { display: true, text: "hours" } } },
      },
    });
  }

  // Cumulative flow: per pod, stacked areas done / review / active / ready per day.
  const statuses = [
    ["done", colour("--done", "#2e8b57")],
    ["review", colour("--cont", "#7a4fc9")],
    ["active", colour("--active", "#c27b0a")],
    ["ready", colour("--ready", "#6b7a90")],
  ];
  document.querySelectorAll("canvas.cfd-canvas").forEach((canvas) => {
    const rows = data.cfd.filter((r) => r.pod === canvas.dataset.pod);
    new Chart(canvas, {
      type: "line",
      data: {
        labels: rows.map((r) => r.day),
        datasets: statuses.map(([status, c]) => ({
          label: status,
          data: rows.map((r) => r[status]),
          borderColor: c,
          backgroundColor: c + "99",
          fill: true,
          pointRadius: 0,
          tension: 0,
        })),
      },
      options: {
        maintainAspectRatio: false,
        interaction: { mode: "index", intersect: false },
        scales: { y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } } },
      },
    });
  });
})();
