// Inline SVG charts: a memory's importance over time, and the relationship graph.
// Each comes with a text equivalent (caption or table) for screen readers.

import { h, svg, fmtNum } from "./ui.js";

let chartCount = 0;

/**
 * A line chart of importance (0-1) over `days` from now. `points` as decayCurve gives
 * them; `floor` draws the decay floor. Returns a <figure> with a caption.
 */
export function decayChart(points, { days, floor, caption }) {
  chartCount += 1;
  const id = `chart${chartCount}`;
  const W = 320;
  const H = 150;
  const m = { left: 34, right: 10, top: 10, bottom: 26 };
  const x = (hours) => m.left + ((W - m.left - m.right) * hours) / (days * 24);
  const y = (v) => m.top + (H - m.top - m.bottom) * (1 - v);
  const line = points.map((p, i) => `${i ? "L" : "M"}${x(p.hours).toFixed(1)},${y(p.importance).toFixed(1)}`).join(" ");
  const last = points[points.length - 1];
  const area = `${line} L${x(last.hours).toFixed(1)},${y(0)} L${x(0)},${y(0)} Z`;
  const grid = [0, 0.5, 1].map((v) => [
    svg("line", { class: "grid", x1: m.left, x2: W - m.right, y1: y(v), y2: y(v) }),
    svg("text", { class: "tick", x: m.left - 6, y: y(v) + 4, "text-anchor": "end" }, fmtNum(v, 1)),
  ]);
  const ticks = [0, days / 2, days].map((d, i) =>
    svg(
      "text",
      { class: "tick", x: x(d * 24), y: H - 8, "text-anchor": ["start", "middle", "end"][i] },
      d === 0 ? "now" : `${Number.isInteger(d) ? d : d.toFixed(1)} d`,
    ),
  );
  const chart = svg(
    "svg",
    {
      class: "decay-chart",
      viewBox: `0 0 ${W} ${H}`,
      role: "img",
      "aria-labelledby": `${id}-title ${id}-desc`,
      "data-points": points.length,
    },
    svg("title", { id: `${id}-title` }, "Importance over time"),
    svg("desc", { id: `${id}-desc` }, caption),
    grid,
    floor > 0
      ? svg("line", { class: "floor", x1: m.left, x2: W - m.right, y1: y(floor), y2: y(floor) })
      : null,
    svg("path", { class: "area", d: area }),
    svg("path", { class: "curve", d: line }),
    svg("circle", { class: "now", cx: x(0), cy: y(points[0].importance), r: 3.5 }),
    ticks,
  );
  return h("figure", { class: "chart" }, chart, h("figcaption", {}, caption));
}

const NODE_R = 30;

function affinityColour(affinity) {
  // Red for dislike, grey for neutral, green for fondness.
  const a = Math.max(-1, Math.min(1, affinity));
  const mix = (from, to, t) => from.map((c, i) => Math.round(c + (to[i] - c) * t));
  const grey = [130, 130, 140];
  const rgb = a < 0 ? mix(grey, [200, 40, 40], -a) : mix(grey, [30, 140, 60], a);
  return `rgb(${rgb.join(",")})`;
}

/**
 * A directed graph: `nodes` [{id, label, kind}] (kind "user" is drawn at the top),
 * `edges` [{from, to, affinity, trust, familiarity, label}]: colour is affinity, width
 * familiarity, opacity trust.
 */
export function relationshipGraph(nodes, edges, summary) {
  const W = 460;
  const H = 400;
  const cx = W / 2;
  const cy = H / 2;
  // Everyone on one circle, you at the top: a chord between two nodes never runs
  // through a third, so every arrow can be told apart.
  const ordered = [...nodes.filter((n) => n.kind === "user"), ...nodes.filter((n) => n.kind !== "user")];
  const at = new Map();
  const radius = Math.min(W, H) / 2 - NODE_R - 16;
  ordered.forEach((n, i) => {
    const angle = -Math.PI / 2 + (2 * Math.PI * i) / Math.max(ordered.length, 1);
    at.set(n.id, { x: cx + radius * Math.cos(angle), y: cy + radius * Math.sin(angle) });
  });

  const defs = svg("defs");
  const lines = edges
    .filter((e) => at.has(e.from) && at.has(e.to))
    .map((e, i) => {
      const a = at.get(e.from);
      const b = at.get(e.to);
      const dx = b.x - a.x;
      const dy = b.y - a.y;
      const len = Math.hypot(dx, dy) || 1;
      const ux = dx / len;
      const uy = dy / len;
      // Bend each direction to its own side so A->B and B->A do not overlap.
      const bend = 26;
      const mx = (a.x + b.x) / 2 - uy * bend;
      const my = (a.y + b.y) / 2 + ux * bend;
      const start = { x: a.x + ux * NODE_R, y: a.y + uy * NODE_R };
      const end = { x: b.x - ux * (NODE_R + 4), y: b.y - uy * (NODE_R + 4) };
      const colour = affinityColour(e.affinity);
      const markerId = `arrow${i}-${Math.random().toString(36).slice(2, 7)}`;
      defs.append(
        svg(
          "marker",
          { id: markerId, viewBox: "0 0 10 10", refX: 8, refY: 5, markerWidth: 5, markerHeight: 5, orient: "auto-start-reverse" },
          svg("path", { d: "M0,0 L10,5 L0,10 z", fill: colour }),
        ),
      );
      return svg(
        "path",
        {
          class: "edge",
          d: `M${start.x.toFixed(1)},${start.y.toFixed(1)} Q${mx.toFixed(1)},${my.toFixed(1)} ${end.x.toFixed(1)},${end.y.toFixed(1)}`,
          stroke: colour,
          "stroke-width": (1.5 + 5 * e.familiarity).toFixed(2),
          "stroke-opacity": (0.35 + 0.65 * e.trust).toFixed(2),
          fill: "none",
          "marker-end": `url(#${markerId})`,
          "data-from": e.from,
          "data-to": e.to,
        },
        svg("title", {}, e.label),
      );
    });

  const circles = nodes.map((n) => {
    const p = at.get(n.id);
    return svg(
      "g",
      { class: `node ${n.kind}`, transform: `translate(${p.x.toFixed(1)},${p.y.toFixed(1)})` },
      svg("circle", { r: NODE_R }),
      svg("text", { "text-anchor": "middle", y: 5 }, n.label.length > 9 ? `${n.label.slice(0, 8)}…` : n.label),
      svg("title", {}, n.label),
    );
  });

  return svg(
    "svg",
    { class: "relationship-graph", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": summary },
    defs,
    lines,
    circles,
  );
}
