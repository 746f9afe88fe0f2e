// Every dashboard page: the window picker, the team switcher and the Plotly charts, whose
// figures the page carries as JSON (no inline script: the Content-Security-Policy allows
// scripts from this server's files only).
(function () {
  const windowSelect = document.getElementById("window");
  if (windowSelect) windowSelect.addEventListener("change", function () {
    const custom = document.getElementById("custom-range");
    if (this.value === "custom") {
      custom.hidden = false;
      custom.querySelectorAll("input").forEach(function (i) { i.disabled = false; });
    } else { this.form.submit(); }
  });
  const teamSwitch = document.getElementById("team-switch");
  if (teamSwitch) teamSwitch.addEventListener("change", function () { window.location.href = this.value; });
  document.querySelectorAll("[data-figure]").forEach(function (el) {
    const figure = JSON.parse(JSON.parse(document.getElementById(el.dataset.figure).textContent));
    Plotly.newPlot(el, figure.data, figure.layout, {displayModeBar: false, responsive: true});
  });
})();
