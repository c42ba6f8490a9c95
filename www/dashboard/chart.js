// The overview's chart: one metric per bucket as bars, the previous period
// as ghost bars behind them, and the same numbers as a table for screen
// readers and for anyone who wants the figures.

import { h, s, number, duration, percent, dateTime, dayLabel, hourLabel } from './dom.js';

/** The metrics the chart and the cards show: key, label, formatter. */
export const METRICS = [
  ['visits', 'Visits', (v) => number.format(v)],
  ['visitors', 'Visitors', (v) => number.format(v)],
  ['page_views', 'Page views', (v) => number.format(v)],
  ['bounce_rate', 'Bounce rate', percent],
  ['avg_duration_ms', 'Avg. duration', duration],
];

export function metricLabel(metric) {
  return (METRICS.find(([m]) => m === metric) || METRICS[0])[1];
}

export function formatMetric(metric, value) {
  return (METRICS.find(([m]) => m === metric) || METRICS[0])[2](value);
}

/**
 * The chart of `metric` over `buckets`, with `previous` (the buckets of the
 * period before, same count) as ghost bars when given, and a table of both.
 */
export function chart({ buckets, previous, metric, interval, width }) {
  const height = 240;
  const pad = { left: 48, right: 8, top: 12, bottom: 28 };
  const innerW = width - pad.left - pad.right;
  const innerH = height - pad.top - pad.bottom;
  const value = (b) => (b ? b[metric] || 0 : 0);
  const peak = Math.max(0, ...buckets.map(value), ...(previous || []).map(value));
  const top = metric === 'bounce_rate' ? 1 : niceCeiling(peak);
  const y = (v) => pad.top + innerH - (innerH * v) / top;
  const slot = innerW / Math.max(1, buckets.length);
  const barW = Math.max(1, Math.min(36, slot * 0.7));
  const every = Math.ceil(buckets.length / Math.max(1, Math.floor(innerW / 70)));
  const fmt = interval === 'hour' ? hourLabel : dayLabel;
  const label = metricLabel(metric);
  const show = (v) => formatMetric(metric, v);
  const ticks = [0, top / 2, top].filter((t, i, all) => all.indexOf(t) === i
    && (metric === 'bounce_rate' || metric === 'avg_duration_ms' || Number.isInteger(t)));
  const total = buckets.reduce((sum, b) => sum + value(b), 0);
  const best = buckets.reduce((a, b) => (value(b) > value(a) ? b : a), buckets[0]);
  const summary = buckets.length
    ? `${label} per ${interval}, ${buckets.length} buckets from ${dateTime.format(buckets[0].start)}; `
      + `highest ${show(value(best))} at ${dateTime.format(best.start)}`
      + (metric === 'visits' || metric === 'page_views' ? `; ${number.format(total)} in all` : '')
      + (previous ? '; ghost bars: the previous period' : '')
    : `${label}: no buckets`;

  const svg = s('svg', {
    class: 'chart', width, height, viewBox: `0 0 ${width} ${height}`, role: 'img',
    'aria-label': summary, 'data-metric': metric,
  },
  ticks.map((t) => s('g', { class: 'tick' },
    s('line', { x1: pad.left, x2: width - pad.right, y1: y(t), y2: y(t) }),
    s('text', { x: pad.left - 8, y: y(t) + 4, 'text-anchor': 'end' }, show(t)))),
  buckets.map((b, i) => {
    const x = pad.left + i * slot + (slot - barW) / 2;
    const v = value(b);
    const bh = Math.max(v > 0 ? 2 : 0, (innerH * v) / top);
    const before = previous && previous[i];
    const pv = value(before);
    const ph = Math.max(pv > 0 ? 2 : 0, (innerH * pv) / top);
    return s('g', { class: 'bucket' },
      s('rect', { class: 'hit', x: pad.left + i * slot, y: pad.top, width: slot, height: innerH }),
      before ? s('rect', {
        class: 'prev', x: x - Math.min(3, barW * 0.2), y: pad.top + innerH - ph,
        width: barW, height: ph, rx: Math.min(3, barW / 2),
      }) : null,
      s('rect', { class: 'bar', x, y: pad.top + innerH - bh, width: barW, height: bh, rx: Math.min(3, barW / 2) }),
      s('title', {}, `${dateTime.format(b.start)}: ${show(v)}`
        + (before ? ` (before: ${show(pv)} at ${dateTime.format(before.start)})` : '')),
      i % every === 0
        ? s('text', { class: 'x', x: pad.left + i * slot + slot / 2, y: height - 8, 'text-anchor': 'middle' }, fmt.format(b.start))
        : null);
  }));

  const table = h('details', { class: 'as-table' },
    h('summary', {}, 'Show as a table'),
    h('div', { class: 'table-wrap' }, h('table', { class: 'data chart-table' },
      h('caption', {}, summary),
      h('thead', {}, h('tr', {},
        h('th', { scope: 'col' }, interval === 'hour' ? 'Hour' : 'Day'),
        h('th', { scope: 'col', class: 'num' }, label),
        previous ? h('th', { scope: 'col', class: 'num' }, 'Previous period') : null)),
      h('tbody', {}, buckets.map((b, i) => h('tr', {},
        h('th', { scope: 'row' }, dateTime.format(b.start)),
        h('td', { class: 'num' }, show(value(b))),
        previous ? h('td', { class: 'num' }, previous[i] ? show(value(previous[i])) : '–') : null))))));
  return [svg, table];
}

function niceCeiling(v) {
  if (v <= 2) return 2;
  const step = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 3, 4, 5, 6, 8, 10]) {
    const c = m * step;
    if (c >= v && Number.isInteger(c / 2)) return c;
  }
  return 10 * step;
}
