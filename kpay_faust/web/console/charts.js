// KPay console charts: SVG line charts of a bounded window of points, with a dashed goal line.
"use strict";

window.KPayCharts = (function () {
  const NS = "http://www.w3.org/2000/svg";
  const PAD = { left: 52, right: 12, top: 22, bottom: 22 };

  function node(name, attrs, text) {
    const made = document.createElementNS(NS, name);
    for (const [key, value] of Object.entries(attrs || {})) made.setAttribute(key, value);
    if (text !== undefined) made.textContent = text;
    return made;
  }

  // A round upper bound for the y axis: 1, 2 or 5 times a power of ten.
  function roundUp(value) {
    if (!(value > 0)) return 1;
    const power = Math.pow(10, Math.floor(Math.log10(value)));
    for (const step of [1, 2, 5, 10]) if (step * power >= value) return step * power;
    return 10 * power;
  }

  function clock(seconds) {
    return new Date(seconds * 1000).toTimeString().slice(0, 8);
  }

  // series: [{name, color, points: [[epoch seconds, value or null], ...]}]
  // options: {goal: number, goalLabel: string, format: value -> text}
  function draw(svg, series, options) {
    const opts = options || {};
    const width = svg.clientWidth || 600;
    const height = svg.clientHeight || 200;
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    const all = series.flatMap((s) => s.points.filter((p) => p[1] !== null && p[1] !== undefined));
    if (!all.length) {
      svg.appendChild(node("text", { x: width / 2, y: height / 2, "text-anchor": "middle" }, "no payments in this range yet"));
      return;
    }
    const xs = all.map((p) => p[0]);
    const x0 = Math.min(...xs);
    const x1 = Math.max(Math.max(...xs), x0 + 1);
    const top = roundUp(Math.max(...all.map((p) => p[1]), opts.goal ? opts.goal * 1.15 : 0));
    const fmt = opts.format || ((v) => String(Math.round(v * 100) / 100));
    const innerW = width - PAD.left - PAD.right;
    const innerH = height - PAD.top - PAD.bottom;
    const X = (t) => PAD.left + ((t - x0) / (x1 - x0)) * innerW;
    const Y = (v) => PAD.top + innerH - (v / top) * innerH;

    for (let i = 0; i <= 4; i++) {
      const v = (top * i) / 4;
      svg.appendChild(node("line", { class: "grid", x1: PAD.left, x2: width - PAD.right, y1: Y(v), y2: Y(v) }));
      svg.appendChild(node("text", { x: PAD.left - 6, y: Y(v) + 4, "text-anchor": "end" }, fmt(v)));
    }
    for (const [t, anchor] of [[x0, "start"], [(x0 + x1) / 2, "middle"], [x1, "end"]]) {
      svg.appendChild(node("text", { x: X(t), y: height - 6, "text-anchor": anchor }, clock(t)));
    }
    if (opts.goal) {
      svg.appendChild(node("line", { class: "goal", x1: PAD.left, x2: width - PAD.right, y1: Y(opts.goal), y2: Y(opts.goal) }));
      svg.appendChild(node("text", { x: width - PAD.right - 4, y: Y(opts.goal) - 4, "text-anchor": "end" }, opts.goalLabel || "goal"));
    }
    let legendX = PAD.left;
    for (const s of series) {
      let path = "";
      let pen = "M";
      for (const [t, v] of s.points) {
        if (v === null || v === undefined) { pen = "M"; continue; }
        path += `${pen}${X(t).toFixed(1)},${Y(v).toFixed(1)} `;
        pen = "L";
      }
      svg.appendChild(node("path", { d: path, fill: "none", stroke: s.color, "stroke-width": 2 }));
      const newest = s.points.filter((p) => p[1] !== null && p[1] !== undefined).pop();
      if (newest) svg.appendChild(node("circle", { cx: X(newest[0]), cy: Y(newest[1]), r: 3, fill: s.color }));
      svg.appendChild(node("rect", { x: legendX, y: 6, width: 12, height: 4, fill: s.color }));
      svg.appendChild(node("text", { x: legendX + 16, y: 12 }, s.name));
      legendX += 24 + s.name.length * 7;
    }
  }

  return { draw: draw };
})();
