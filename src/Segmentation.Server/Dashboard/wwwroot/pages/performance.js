// Performance: KPIs per segment and per variant over 24 h, 7 or 30 days, an hourly chart of one metric per
// segment, and segments whose outcomes do not differ from the average. Route: GET /v1/kpis (twice).

import { ApiError, call } from '../api.js';
import { lineChart } from '../charts.js';
import { h, fill, num, fmtInt, fmtDec, fmtPct, fmtTime, enumLabel, hashQuery, section, sortableTable, unavailable } from '../util.js';

const RANGES = { '24h': { label: 'Last 24 hours', ms: 86400e3 }, '7d': { label: 'Last 7 days', ms: 7 * 86400e3 }, '30d': { label: 'Last 30 days', ms: 30 * 86400e3 } };

/**
 * The KPIs shown, by their JSON names, with how they are formatted; `count` metrics are 0 in hours without data. Reach,
 * and revenue per user with it, is counted over whole UTC days: an hour's point holds its day's, so they are in the
 * tables and not in the hourly chart (`hourly: false`).
 */
const METRICS = [
  { key: 'reach', label: 'Reach', fmt: fmtInt, count: true, hourly: false },
  { key: 'decisions', label: 'Decisions', fmt: fmtInt, count: true },
  { key: 'impressions', label: 'Impressions', fmt: fmtInt, count: true },
  { key: 'ctr', label: 'CTR', fmt: (v) => fmtPct(v, 2) },
  { key: 'conversionRate', label: 'Conversion rate', fmt: (v) => fmtPct(v, 2) },
  { key: 'revenuePerUser', label: 'Revenue per user', fmt: (v) => fmtDec(v, 2), hourly: false },
  { key: 'churned', label: 'Churned', fmt: fmtInt, count: true },
];
const HOURLY = METRICS.filter((m) => m.hourly !== false);

/** The "does not change the experience" rule, stated on the page. */
const MIN_IMPRESSIONS = 1000;
const RULE = `A segment is flagged when it has at least ${MIN_IMPRESSIONS.toLocaleString('en-GB')} impressions and both its CTR and its conversion rate lie within two standard errors of the overall rate (|rate − overall| ≤ 2·√(overall·(1 − overall) / n), n being the segment's impressions for the CTR and its exposures, impressions and email sends, for the conversion rate): its outcomes do not differ from the average beyond noise.`;

export async function render(ctx) {
  ctx.setTitle('Performance');
  const q = ctx.query;
  const range = RANGES[q.get('range')] ? q.get('range') : '7d';
  let metric = HOURLY.find((m) => m.key === q.get('metric')) ?? HOURLY[0];
  const end = new Date();
  const start = new Date(end.getTime() - RANGES[range].ms);
  const base = { start: start.toISOString(), end: end.toISOString() };
  // The service bounds a series' points (a large catalog over 30 days): the tables are then read without it.
  const segmentKpis = (series) => call('/v1/kpis', { query: { ...base, groupBy: 'KPI_DIMENSION_SEGMENT', ...(series ? { includeSeries: true } : {}) }, signal: ctx.signal });
  const seriesRefused = (err) => err instanceof ApiError && (err.details ?? []).some((d) => (d.fieldViolations ?? []).some((v) => v.field === 'include_series'));
  const bySegment = segmentKpis(true).catch((err) => (seriesRefused(err) ? segmentKpis(false).then((res) => ({ ...res, seriesRefusal: err.message })) : Promise.reject(err)));
  const byVariant = call('/v1/kpis', { query: { ...base, groupBy: ['KPI_DIMENSION_SEGMENT', 'KPI_DIMENSION_VARIANT'] }, signal: ctx.signal });

  const rangePicker = h('fieldset', {}, h('legend', {}, 'Time range'), Object.entries(RANGES).map(([key, r]) => h('label', { className: 'choice' },
    h('input', {
      type: 'radio', name: 'range', value: key, checked: key === range, 'data-testid': `range-${key}`,
      on: { change: () => { ctx.keepFocus(`range-${key}`); location.hash = `#/performance?range=${key}&metric=${metric.key}`; } },
    }), r.label)));
  const totals = section('All segments', 'totals');
  const segTable = section('KPIs per segment', 'kpi-segments', h('p', { className: 'help' }, 'Click a column header to sort. Reach is estimated (about 1.6 % standard error) over the whole UTC days the range touches; ratios are as the service computes them.'));
  const flags = section('Segments that do not change the experience', 'no-difference', h('p', { className: 'help', 'data-testid': 'no-difference-rule' }, `Rule: ${RULE}`));
  const picker = h('select', { id: 'series-metric', 'data-testid': 'series-metric' }, HOURLY.map((m) => h('option', { value: m.key }, m.label)));
  picker.value = metric.key;
  // Listened to from the start: a metric picked while the KPIs load is the one drawn when they arrive.
  let drawChart = null;
  picker.addEventListener('change', () => {
    metric = HOURLY.find((m) => m.key === picker.value);
    history.replaceState(null, '', `#/performance?range=${range}&metric=${metric.key}`);
    drawChart?.();
  });
  const chart = section('Hourly series per segment', 'series', h('label', { for: 'series-metric' }, 'Metric'), picker,
    h('p', { className: 'help' }, 'Reach and revenue per user are counted over whole UTC days, so they are in the tables only.'));
  const varTable = section('KPIs per variant', 'kpi-variants', h('p', { className: 'help' }, 'Grouped by segment and variant; outcomes that named no variant form a row of their own. Churn has no variant.'));
  ctx.main.append(h('h1', { tabindex: '-1' }, 'Performance'), h('div', { className: 'card row' }, rangePicker, h('p', { className: 'note', 'data-testid': 'range-used' }, '')),
    totals.el, segTable.el, flags.el, chart.el, varTable.el);

  bySegment.then((res) => {
    ctx.main.querySelector('[data-testid="range-used"]').textContent = `Range used: ${fmtTime(res.start)} to ${fmtTime(res.end)} (rounded to hours).`;
    renderTotals(totals.body, res);
    const rows = (res.rows ?? []).map((r) => ({ ...r, judged: judge(r.kpis ?? {}, res.total ?? {}) }));
    fill(segTable.body, h('div', { className: 'table-wrap' }, sortableTable({
      name: 'kpi-segments',
      caption: `${rows.length} segments with decisions, most decisions first`,
      className: 'kpi-table',
      rows,
      rowAttrs: (r) => ({ 'data-testid': `kpi-row-${r.segmentId}` }),
      columns: [
        { key: 'segment', label: 'Segment', value: (r) => r.segmentId ?? '', render: (r) => h('a', { href: `#/segments/${encodeURIComponent(r.segmentId ?? '')}` }, r.segmentId || '(none)') },
        ...METRICS.map((m) => ({ key: m.key, label: m.label, numeric: true, value: (r) => num(r.kpis?.[m.key]), render: (r) => m.fmt(r.kpis?.[m.key]), testid: (r) => `kpi-${r.segmentId}-${m.key}` })),
        { key: 'differs', label: 'Differs from average?', value: (r) => r.judged.value, render: (r) => r.judged.text, testid: (r) => `kpi-${r.segmentId}-differs` },
      ],
    })));
    renderFlags(flags.body, rows);
    // One chart alive at a time: the one a metric change replaces is destroyed (its resize observer and listeners).
    let drawn = null;
    const draw = () => {
      drawn?.destroy();
      chart.body.replaceChildren();
      drawn = renderChart(ctx, chart.body, rows, metric, res);
    };
    drawChart = draw;
    draw();
  }, (err) => {
    ctx.fail(err, 'KPIs per segment (GET /v1/kpis)');
    for (const s of [totals, segTable, flags, chart]) {
      fill(s.body, unavailable('the KPIs could not be read.'));
    }
  });

  byVariant.then((res) => {
    const rows = res.rows ?? [];
    const key = (r) => r.variantId || `${r.segmentId}.${enumLabel(r.variant, 'VARIANT_KIND_')}`;
    fill(varTable.body, rows.length ? h('div', { className: 'table-wrap' }, sortableTable({
      name: 'kpi-variants',
      caption: `${rows.length} variants with decisions, most decisions first`,
      rows,
      rowAttrs: (r) => ({ 'data-testid': `kpi-variant-row-${key(r)}` }),
      columns: [
        { key: 'variant', label: 'Variant', value: (r) => r.variantId || '', render: (r) => h('code', {}, r.variantId || '(none named)') },
        { key: 'vsegment', label: 'Segment', value: (r) => r.segmentId ?? '' },
        { key: 'kind', label: 'Kind', value: (r) => enumLabel(r.variant, 'VARIANT_KIND_') },
        ...METRICS.filter((m) => m.key !== 'churned').map((m) => ({ key: m.key, label: m.label, numeric: true, value: (r) => num(r.kpis?.[m.key]), render: (r) => m.fmt(r.kpis?.[m.key]), testid: (r) => `kpi-variant-${key(r)}-${m.key}` })),
      ],
    })) : h('p', {}, 'No decisions in this range.'));
  }, (err) => {
    ctx.fail(err, 'KPIs per variant (GET /v1/kpis)');
    fill(varTable.body, unavailable('the KPIs per variant could not be read.'));
  });

  await Promise.allSettled([bySegment, byVariant]);
}

function renderTotals(body, res) {
  const t = res.total ?? {};
  fill(body, h('ul', { className: 'kpis' },
    METRICS.map((m) => h('li', {}, h('span', { className: 'label' }, m.label), h('span', { className: 'value', 'data-testid': `kpi-total-${m.key}`, 'data-value': num(t[m.key]) }, m.fmt(t[m.key])))),
    h('li', {}, h('span', { className: 'label' }, 'Fallback rate'), h('span', { className: 'value', 'data-testid': 'kpi-fallback-rate', 'data-value': num(res.fallbackRate) }, fmtPct(res.fallbackRate))),
    h('li', {}, h('span', { className: 'label' }, 'Unattributed outcomes'), h('span', { className: 'value', 'data-testid': 'kpi-unattributed', 'data-value': num(res.unattributedOutcomes) }, fmtInt(res.unattributedOutcomes)))));
}

/** Applies RULE to one segment's KPIs against the overall KPIs. */
function judge(k, total) {
  const n = num(k.impressions);
  if (n < MIN_IMPRESSIONS) {
    return { value: 'unknown', text: `not judged (< ${fmtInt(MIN_IMPRESSIONS)} impressions)` };
  }
  const within = (rate, overall, count) => Math.abs(num(rate) - num(overall)) <= 2 * Math.sqrt(num(overall) * (1 - num(overall)) / count);
  return within(k.ctr, total.ctr, n) && within(k.conversionRate, total.conversionRate, n + num(k.emailSends))
    ? { value: 'no', text: '≈ no: within noise of the average' }
    : { value: 'yes', text: 'yes' };
}

function renderFlags(body, rows) {
  const flagged = rows.filter((r) => r.judged.value === 'no');
  fill(body, flagged.length
    ? [h('p', { className: 'flag', 'data-testid': 'no-difference-message' }, `⚠ ${flagged.length} segment${flagged.length === 1 ? '' : 's'} with outcomes within noise of the average: a segment that does not change the experience should not exist.`),
      h('ul', { 'data-testid': 'no-difference-flags' }, flagged.map((r) => h('li', { 'data-testid': `no-difference-${r.segmentId}` },
        h('a', { href: `#/segments/${encodeURIComponent(r.segmentId)}` }, r.segmentId),
        `: CTR ${fmtPct(r.kpis?.ctr)}, conversion rate ${fmtPct(r.kpis?.conversionRate)} over ${fmtInt(r.kpis?.impressions)} impressions — a segment that does not change the experience should not exist.`)))]
    : h('p', { 'data-testid': 'no-difference-message' }, 'No segment is flagged in this range.'));
}

function renderChart(ctx, body, rows, metric, res) {
  if (res.seriesRefusal) {
    fill(body, h('p', { 'data-testid': 'series-refused' }, `The hourly series is not shown for this range: ${res.seriesRefusal}. Choose a shorter range.`));
    return;
  }
  const withSeries = rows.filter((r) => (r.series ?? []).length);
  if (!withSeries.length) {
    fill(body, h('p', {}, 'No hourly data in this range.'));
    return;
  }
  // Every hour from the first with data to the last: an hour no segment had data in is 0 for a count and a gap for a
  // ratio, never a line drawn across it.
  const seconds = withSeries.flatMap((r) => r.series.map((p) => Date.parse(p.hour) / 1000));
  // Not Math.min(...seconds): 2,000 segments × 720 hours is past the arguments a call may take.
  const first = seconds.reduce((a, b) => Math.min(a, b));
  const last = seconds.reduce((a, b) => Math.max(a, b));
  const xs = Array.from({ length: Math.round((last - first) / 3600) + 1 }, (_, i) => first + i * 3600);
  const hours = xs.map((x) => new Date(x * 1000).toISOString());
  const series = withSeries.map((r) => {
    const values = xs.map(() => (metric.count ? 0 : null));
    for (const p of r.series) {
      values[Math.round((Date.parse(p.hour) / 1000 - first) / 3600)] = num(p.kpis?.[metric.key]);
    }
    return { label: r.segmentId, values };
  });
  const label = `${metric.label} per hour and segment, ${fmtTime(res.start)} to ${fmtTime(res.end)}, ${series.length} segments. The range totals are in the KPI table; the hourly values are in the data table below.`;
  const chart = lineChart(body, { xs, series, ariaLabel: label, format: metric.fmt, height: 300 });
  ctx.onCleanup(() => chart.destroy());
  body.querySelector('.chart')?.setAttribute('data-testid', 'series-chart');
  if (!metric.count) {
    body.append(h('p', { className: 'note' }, 'Hours without impressions have no value (gaps).'));
  }
  // Text alternative, built when opened (up to 720 hours × segments).
  const details = h('details', {}, h('summary', {}, `Data table: ${metric.label} per hour`));
  details.addEventListener('toggle', () => {
    if (!details.open || details.querySelector('table')) {
      return;
    }
    details.append(h('div', { className: 'table-wrap' }, h('table', { className: 'data' },
      h('caption', { className: 'sr-only' }, `${metric.label} per hour and segment`),
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Hour (UTC)'), series.map((s) => h('th', { scope: 'col', className: 'num' }, s.label)))),
      h('tbody', {}, hours.map((hr, i) => h('tr', {}, h('th', { scope: 'row' }, fmtTime(hr)), series.map((s) => h('td', { className: 'num' }, s.values[i] === null ? '—' : metric.fmt(s.values[i])))))))));
  });
  body.append(details);
  return chart;
}
