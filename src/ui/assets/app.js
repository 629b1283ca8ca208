// mlrun ui: small enhancements; every page works without this script.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  // Compare: enabled once two or more runs are selected
  const form = document.getElementById("compare-form");
  if (form) {
    const button = document.getElementById("compare-button");
    const boxes = () => Array.from(form.querySelectorAll("input[name=runs]"));
    const update = () => {
      const n = boxes().filter((b) => b.checked).length;
      button.disabled = n < 2;
      button.textContent = n >= 2 ? "Compare " + n + " runs" : "Compare selected runs";
    };
    form.addEventListener("change", update);
    update();
    // one comma-separated `runs` value: the stable URL /compare?runs=A,B,C
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const ids = boxes().filter((b) => b.checked).map((b) => b.value);
      window.location.href = "/compare?runs=" + ids.map(encodeURIComponent).join(",");
    });
  }
  // lineage: changing the depth or direction reloads at once
  for (const sel of document.querySelectorAll("form.filters select[name=depth], form.filters select[name=dir]")) {
    sel.addEventListener("change", () => sel.form.submit());
  }
  // "/" focuses the first filter field (as many tools do)
  document.addEventListener("keydown", (e) => {
    if (e.key === "/" && !(e.target instanceof HTMLInputElement || e.target instanceof HTMLSelectElement)) {
      const first = document.querySelector("form.filters input:not([type=hidden])");
      if (first) { e.preventDefault(); first.focus(); }
    }
  });
});
