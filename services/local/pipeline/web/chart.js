// A small time-series line chart drawn as SVG: the dashboard's only graphics code, written here so the page needs
// nothing from the network.
'use strict';

const SVG = 'http://www.w3.org/2000/svg';
const COLORS = ['var(--c0)', 'var(--c1)', 'var(--c2)', 'var(--c3)', 'var(--c4)', 'var(--c5)'];
const WIDTH = 480, HEIGHT = 200, LEFT = 48, RIGHT = 10, TOP = 10, BOTTOM = 22;

function el(name, attrs, text) {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

// niceMax rounds a maximum up to 1, 2 or 5 times a power of ten, so the axis reads well.
function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

function formatValue(v) {
  if (Math.abs(v) >= 1e6) return (v / 1e6).toFixed(1) + 'M';
  if (Math.abs(v) >= 1e3) return (v / 1e3).toFixed(1) + 'k';
  return Number.isInteger(v) ? String(v) : v.toFixed(1);
}

function formatTime(ms) {
  return new Date(ms).toTimeString().slice(0, 8);
}

// drawChart renders series ([{label, points: [[ms, value], ...]}]) over [from, to] into an <svg>, with vertical
// markers ([{at, label, reason}]) when given; empty is what it says without any point.
function drawChart(series, from, to, markers, empty) {
  const svg = el('svg', {viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: 'img'});
  const w = WIDTH - LEFT - RIGHT, h = HEIGHT - TOP - BOTTOM;
  let max = 0;
  for (const s of series) for (const [, v] of s.points || []) max = Math.max(max, v);
  max = niceMax(max);
  const x = t => LEFT + (to > from ? (t - from) / (to - from) : 0) * w;
  const y = v => TOP + h - (v / max) * h;
  for (const f of [0, 0.5, 1]) {
    svg.appendChild(el('line', {class: 'axis', x1: LEFT, x2: LEFT + w, y1: y(f * max), y2: y(f * max)}));
    svg.appendChild(el('text', {class: 'tick', x: LEFT - 4, y: y(f * max) + 3, 'text-anchor': 'end'}, formatValue(f * max)));
  }
  for (const f of [0, 0.5, 1]) {
    const t = from + f * (to - from);
    svg.appendChild(el('text', {class: 'tick', x: x(t), y: HEIGHT - 6, 'text-anchor': f === 0 ? 'start' : f === 1 ? 'end' : 'middle'}, formatTime(t)));
  }
  let drawn = 0;
  series.forEach((s, i) => {
    const pts = (s.points || []).filter(([t]) => t >= from && t <= to);
    if (pts.length === 0) return;
    drawn++;
    const d = pts.map(([t, v], j) => `${j ? 'L' : 'M'}${x(t).toFixed(1)},${y(v).toFixed(1)}`).join('');
    const path = el('path', {class: 'line', d, stroke: COLORS[i % COLORS.length], 'data-label': s.label, 'data-points': pts.length});
    path.appendChild(el('title', {}, `${s.label}: ${formatValue(pts[pts.length - 1][1])}`));
    svg.appendChild(path);
  });
  for (const m of markers || []) {
    if (m.at < from || m.at > to) continue;
    const g = el('g', {class: 'event'});
    g.appendChild(el('line', {class: 'marker', x1: x(m.at), x2: x(m.at), y1: TOP, y2: TOP + h}));
    g.appendChild(el('text', {class: 'marker-label', x: x(m.at) + 3, y: TOP + 10}, m.label));
    g.appendChild(el('title', {}, `${formatTime(m.at)} ${m.label}: ${m.reason}`));
    svg.appendChild(g);
  }
  if (drawn === 0) {
    svg.appendChild(el('text', {class: 'empty', x: LEFT + w / 2, y: TOP + h / 2, 'text-anchor': 'middle'}, empty || 'no data yet'));
  }
  return svg;
}

function drawLegend(series) {
  const legend = document.createElement('div');
  legend.className = 'legend';
  series.forEach((s, i) => {
    const item = document.createElement('span');
    const swatch = document.createElement('i');
    swatch.style.background = COLORS[i % COLORS.length];
    item.append(swatch, s.label);
    legend.appendChild(item);
  });
  return legend;
}
