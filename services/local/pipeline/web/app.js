// The dashboard page: every 2 s it fetches /api/snapshot (the figures the services' EMF lines and the autoscaler's
// decision lines hold) and redraws the totals and the charts (the last 15 minutes at most).
'use strict';

const REFRESH_MS = 2000;
const chartsEl = document.getElementById('charts');
const stateEl = document.getElementById('state');
const cards = new Map();

function setText(id, value) {
  document.getElementById(id).textContent = value;
}

function card(chart) {
  let c = cards.get(chart.id);
  if (!c) {
    c = document.createElement('section');
    c.className = 'chart';
    c.id = 'chart-' + chart.id;
    chartsEl.appendChild(c);
    cards.set(chart.id, c);
  }
  return c;
}

function render(snap) {
  const t = snap.totals;
  setText('records-in', t.recordsIn.toLocaleString());
  setText('kinesis-records-in', t.kinesisRecordsIn.toLocaleString());
  setText('aggregation', t.kinesisRecordsIn > 0 ? (t.recordsIn / t.kinesisRecordsIn).toFixed(1) : '–');
  setText('records-processed', t.recordsProcessed.toLocaleString());
  setText('workers', String(t.workers));
  const from = snap.from, to = snap.now;
  for (const chart of snap.charts) {
    const c = card(chart);
    const title = document.createElement('h2');
    title.textContent = chart.title;
    const unit = document.createElement('div');
    unit.className = 'unit';
    unit.textContent = chart.unit;
    const parts = [title, unit, drawChart(chart.series, from, to, chart.markers ? snap.events : [], chart.empty), drawLegend(chart.series)];
    if (chart.markers && snap.events.length > 0) {
      const list = document.createElement('ol');
      list.className = 'events';
      for (const e of snap.events.slice(-5)) {
        const item = document.createElement('li');
        item.textContent = `${formatTime(e.at)} ${e.label}: ${e.reason}`;
        list.appendChild(item);
      }
      parts.push(list);
    }
    c.replaceChildren(...parts);
  }
  stateEl.textContent = 'updated ' + formatTime(snap.now);
  stateEl.className = 'state';
  document.body.dataset.updated = String(snap.now);
}

async function refresh() {
  try {
    const resp = await fetch('api/snapshot', {cache: 'no-store'});
    const body = await resp.json();
    if (!resp.ok) throw new Error(body.error || resp.statusText);
    render(body);
  } catch (err) {
    stateEl.textContent = 'not updated: ' + err.message;
    stateEl.className = 'state error';
  }
}

refresh();
setInterval(refresh, REFRESH_MS);
