// uPlot (global `uPlot` from /dashboard/vendor/uPlot.iife.min.js) behind three small functions, and the colour
// scales: Okabe–Ito for categories (with dash patterns, so series differ by more than colour) and a viridis-like
// sequential scale for heatmaps.

import { h } from './util.js';

/** Okabe–Ito, the strongest contrasts on white first (the yellow last). */
export const OKABE_ITO = ['#0072B2', '#D55E00', '#009E73', '#CC79A7', '#E69F00', '#56B4E9', '#000000', '#F0E442'];
const DASHES = [[], [8, 4], [2, 3], [10, 3, 2, 3]];

/** Colour and dash of the i-th category series. */
export const seriesStyle = (i) => ({ stroke: OKABE_ITO[i % OKABE_ITO.length], dash: DASHES[Math.floor(i / OKABE_ITO.length) % DASHES.length] });

const VIRIDIS = ['#440154', '#482878', '#3e4989', '#31688e', '#26828e', '#1f9e89', '#35b779', '#6ece58', '#b5de2b', '#fde725'];

/** A viridis colour for t in [0, 1], and a text colour readable on it. */
export function viridis(t) {
  const x = Math.min(1, Math.max(0, t)) * (VIRIDIS.length - 1);
  const i = Math.min(VIRIDIS.length - 2, Math.floor(x));
  const f = x - i;
  const a = VIRIDIS[i].match(/\w\w/g).map((c) => parseInt(c, 16));
  const b = VIRIDIS[i + 1].match(/\w\w/g).map((c) => parseInt(c, 16));
  const rgb = a.map((v, k) => Math.round(v + (b[k] - v) * f));
  return { background: `rgb(${rgb.join(',')})`, color: readableOn(rgb) };
}

// Black or white, whichever contrasts more with the background (WCAG relative luminance).
function readableOn(rgb) {
  const [r, g, b] = rgb.map((v) => {
    const c = v / 255;
    return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  });
  const luminance = 0.2126 * r + 0.7152 * g + 0.0722 * b;
  return (luminance + 0.05) / 0.05 >= 1.05 / (luminance + 0.05) ? '#000000' : '#ffffff';
}

const HOUR = 3600;

/**
 * Hourly samples as chart data: unix seconds and values, with a null (a gap in the line) in the hour after any sample
 * whose next one is more than an hour later, so no line is drawn across hours nothing was sampled in (the service down,
 * or a segment added later). A sample left alone between two gaps is drawn as a point (lonePoints).
 */
export function hourlySeries(points, valueOf) {
  const xs = [];
  const values = [];
  points.forEach((p, i) => {
    const x = Date.parse(p.hour) / 1000;
    if (i > 0 && x - xs.at(-1) > HOUR) {
      xs.push(xs.at(-1) + HOUR);
      values.push(null);
    }
    xs.push(x);
    values.push(valueOf(p));
  });
  return { xs, values };
}

/** uPlot's points.filter: the samples with no sample beside them (a gap on each side), which a line cannot show. */
function lonePoints(u, seriesIdx) {
  const values = u.data[seriesIdx];
  const lone = [];
  for (let i = 0; i < values.length; i++) {
    if (values[i] != null && (i === 0 || values[i - 1] == null) && (i === values.length - 1 || values[i + 1] == null)) {
      lone.push(i);
    }
  }
  return lone.length ? lone : null;
}

const utc = (ts) => window.uPlot.tzDate(new Date(ts * 1e3), 'Etc/UTC');

function missingLibrary(container) {
  container.append(h('p', { className: 'unavailable' }, 'Chart library not loaded (/dashboard/vendor/uPlot.iife.min.js).'));
  return { destroy() {}, setData() {} };
}

/**
 * A time-series line chart. xs: unix seconds; series: [{label, values}] (null leaves a gap). The chart is an
 * image with `ariaLabel`; callers add a data table or a text alternative next to it. Resizes with its container.
 * `format` formats the y values (axis and legend).
 */
export function lineChart(container, { xs, series, ariaLabel, height = 280, format = (v) => String(v), xWindow = 0, xLabel = 'Hour (UTC)' }) {
  const box = h('div', { role: 'img', 'aria-label': ariaLabel, className: 'chart' });
  container.append(box);
  if (!window.uPlot) {
    return missingLibrary(box);
  }
  const width = () => Math.max(300, box.clientWidth || container.clientWidth || 600);
  const plot = new window.uPlot({
    width: width(),
    height,
    tzDate: utc,
    // xWindow (seconds): always show that much time up to the newest point (a live chart).
    scales: { x: xWindow ? { time: true, range: (u, min, max) => [max - xWindow, max] } : { time: true } },
    cursor: { drag: { x: false, y: false } },
    series: [
      { label: xLabel },
      ...series.map((s, i) => ({ label: s.label, ...seriesStyle(i), width: 2, points: { show: false, filter: lonePoints }, value: (u, v) => (v === null || v === undefined ? '—' : format(v)) })),
    ],
    axes: [{}, { size: 70, values: (u, splits) => splits.map(format) }],
  }, [xs, ...series.map((s) => s.values)], box);
  const resize = new ResizeObserver(() => plot.setSize({ width: width(), height }));
  resize.observe(box);
  let destroyed = false;
  return {
    setData: (newXs, values) => plot.setData([newXs, ...values]),
    destroy() {
      if (destroyed) {
        return; // a chart replaced before its page was left is destroyed then, and again at the page's cleanup
      }
      destroyed = true;
      resize.disconnect();
      plot.destroy();
    },
  };
}

/** A sparkline (no axes, legend or cursor) for a table cell. */
export function sparkline(container, { xs, values, ariaLabel, width = 140, height = 32 }) {
  const box = h('span', { role: 'img', 'aria-label': ariaLabel, className: 'sparkline' });
  container.append(box);
  if (!window.uPlot) {
    return missingLibrary(box);
  }
  const plot = new window.uPlot({
    width,
    height,
    tzDate: utc,
    legend: { show: false },
    cursor: { show: false },
    select: { show: false },
    scales: { x: { time: true } },
    axes: [{ show: false }, { show: false }],
    series: [{}, { stroke: OKABE_ITO[0], width: 1.5, points: { show: xs.length === 1, filter: lonePoints } }],
  }, [xs, values], box);
  return { destroy: () => plot.destroy() };
}
