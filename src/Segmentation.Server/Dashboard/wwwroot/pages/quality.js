// Data quality: event validity and completeness, profile freshness, declared data and the fallback rate.
// Routes: GET /v1/data-quality; GET /v1/kpis once per day of the last 7 (the fallback rate over time: the
// data-quality response has no series, GetKpis gives the rate of any range).

import { call } from '../api.js';
import { lineChart } from '../charts.js';
import { h, fill, num, fmtInt, fmtPct, fmtTime, fmtDuration, section, unavailable } from '../util.js';

const DAY = 86400e3;
const HOLDOUT_EXPERIMENT = 'decisioning_holdout'; // the experiment the decisioning holdout's decisions report

export async function render(ctx) {
  ctx.setTitle('Data quality');
  const quality = call('/v1/data-quality', { signal: ctx.signal });
  const today = Math.floor(Date.now() / DAY) * DAY;
  const days = [6, 5, 4, 3, 2, 1, 0].map((back) => {
    const start = new Date(today - back * DAY);
    const end = new Date(Math.min(today - back * DAY + DAY, Date.now()));
    // By arm: the decisioning holdout's decisions are a row of their own (the rate leaves them out).
    return { day: start.toISOString().slice(0, 10), kpis: call('/v1/kpis', { query: { start: start.toISOString(), end: end.toISOString(), groupBy: 'KPI_DIMENSION_ARM' }, signal: ctx.signal }) };
  });

  const overview = section('Overview', 'quality-overview');
  const fallback = section('Fallback rate per day', 'fallback-days', h('p', { className: 'help' },
    'Share of each UTC day’s decisions won by the fallback segment because no other segment was eligible, leaving out the decisioning holdout’s (served the fallback on purpose) (GetKpis fallbackRate per day; today so far).'));
  const completeness = section('Completeness of accepted events', 'completeness');
  const rejections = section('Rejected events by reason', 'rejections');
  const freshness = section('Freshness: profiles by the age of their last event', 'freshness');
  ctx.main.append(h('h1', { tabindex: '-1' }, 'Data quality'), overview.el, h('div', { className: 'grid-2' }, completeness.el, rejections.el), freshness.el, fallback.el);

  quality.then((q) => {
    renderOverview(overview.body, q);
    renderCompleteness(completeness.body, q.completeness ?? []);
    renderRejections(rejections.body, q.rejections ?? [], q);
    renderFreshness(freshness.body, q);
  }, (err) => {
    ctx.fail(err, 'Data quality (GET /v1/data-quality)');
    for (const s of [overview, completeness, rejections, freshness]) {
      fill(s.body, unavailable('the data quality could not be measured.'));
    }
  });

  const results = await Promise.allSettled(days.map((d) => d.kpis));
  const failed = results.find((r) => r.status === 'rejected');
  if (failed) {
    ctx.fail(failed.reason, 'Fallback rate per day (GET /v1/kpis)');
  }
  renderFallbackDays(ctx, fallback.body, days.map((d, i) => ({ day: d.day, res: results[i].status === 'fulfilled' ? results[i].value : null })));
  await quality.catch(() => {});
}

const fact = (label, testid, value, text) => [h('dt', {}, label), h('dd', { 'data-testid': testid, 'data-value': value }, text)];

function renderOverview(body, q) {
  const hasUnsegmented = q.unsegmentedShare !== undefined && q.unsegmentedShare !== null;
  fill(body,
    h('ul', { className: 'kpis' },
      h('li', {}, h('span', { className: 'label' }, 'Fallback rate'), h('span', { className: 'value', 'data-testid': 'fallback-rate', 'data-value': num(q.fallbackRate) }, fmtPct(q.fallbackRate)),
        h('span', { className: 'note', style: { display: 'block' } }, `of ${fmtInt(q.decisions)} decisions`)),
      h('li', {}, h('span', { className: 'label' }, 'Declared data'), h('span', { className: 'value', 'data-testid': 'declared-share', 'data-value': num(q.declaredShare) }, fmtPct(q.declaredShare)),
        h('span', { className: 'note', style: { display: 'block' } }, 'of profiles have a zero-party trait')),
      h('li', {}, h('span', { className: 'label' }, 'Unsegmented'), h('span', { className: 'value', 'data-testid': 'unsegmented-share', 'data-value': hasUnsegmented ? num(q.unsegmentedShare) : undefined }, hasUnsegmented ? fmtPct(q.unsegmentedShare) : 'n/a'),
        h('span', { className: 'note', style: { display: 'block' } }, hasUnsegmented ? 'of profiles match only the fallback' : 'memberships are being rebuilt')),
      h('li', {}, h('span', { className: 'label' }, 'Profiles'), h('span', { className: 'value', 'data-testid': 'quality-profiles', 'data-value': num(q.profiles) }, fmtInt(q.profiles)))),
    h('dl', { className: 'facts', style: { marginTop: '.75rem' } },
      fact('Events accepted', 'events-accepted', num(q.eventsAccepted), `${fmtInt(q.eventsAccepted)} (since the service started)`),
      fact('Events duplicate', 'events-duplicate', num(q.eventsDuplicate), fmtInt(q.eventsDuplicate)),
      fact('Events rejected', 'events-rejected', num(q.eventsRejected), fmtInt(q.eventsRejected)),
      fact('Decisions in range', 'quality-decisions', num(q.decisions), `${fmtInt(q.decisions)} (${fmtTime(q.start)} to ${fmtTime(q.end)})`),
      fact('Median age of last event', 'median-age', q.medianAge ?? '', fmtDuration(q.medianAge)),
      fact('90th percentile age', 'p90-age', q.p90Age ?? '', fmtDuration(q.p90Age)),
      fact('Measured', 'measured-at', q.measuredAt ?? '', fmtTime(q.measuredAt))));
}

function barCell(share, text) {
  return [h('span', { className: 'bar', style: { width: `${Math.round(Math.min(1, Math.max(0, share)) * 8)}rem` }, 'aria-hidden': 'true' }), text];
}

function renderCompleteness(body, list) {
  fill(body, list.length ? h('table', { className: 'data', 'data-testid': 'completeness-table' },
    h('caption', { className: 'sr-only' }, 'Share of accepted events carrying each optional context field'),
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Field'), h('th', { scope: 'col' }, 'Share of accepted events'))),
    h('tbody', {}, list.map((c) => h('tr', {}, h('th', { scope: 'row' }, h('code', {}, c.field)),
      h('td', { 'data-testid': `completeness-${c.field}`, 'data-value': num(c.share) }, barCell(num(c.share), fmtPct(c.share, 1)))))))
    : h('p', {}, 'No accepted events yet.'));
}

function renderRejections(body, list, q) {
  fill(body, list.length ? h('table', { className: 'data', 'data-testid': 'rejections-table' },
    h('caption', {}, `${fmtInt(q.eventsRejected)} rejected events, most frequent reason first`),
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Reason (field that failed)'), h('th', { scope: 'col', className: 'num' }, 'Events'))),
    h('tbody', {}, list.map((r) => h('tr', {}, h('th', { scope: 'row' }, h('code', {}, r.reason)),
      h('td', { className: 'num', 'data-testid': `rejection-${r.reason}`, 'data-value': num(r.events) }, fmtInt(r.events))))))
    : h('p', { 'data-testid': 'rejections-none' }, 'No events rejected since the service started.'));
}

function renderFreshness(body, q) {
  const bands = q.freshness ?? [];
  const max = Math.max(1, ...bands.map((b) => num(b.profiles)));
  fill(body,
    h('p', { className: 'help' }, `Median age ${fmtDuration(q.medianAge)}, 90th percentile ${fmtDuration(q.p90Age)}. The bars are drawn to the largest band; the number is the count.`),
    bands.length ? h('table', { className: 'data', 'data-testid': 'freshness-table' },
      h('caption', { className: 'sr-only' }, 'Profiles per age band of their last event, youngest first'),
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Age of last event'), h('th', { scope: 'col' }, 'Profiles'))),
      h('tbody', {}, bands.map((b, i) => h('tr', { 'data-testid': `freshness-${i}`, 'data-label': b.label },
        h('th', { scope: 'row' }, b.label), h('td', { 'data-testid': `freshness-${i}-profiles`, 'data-value': num(b.profiles) }, barCell(num(b.profiles) / max, fmtInt(b.profiles)))))))
      : h('p', {}, 'No profiles.'));
}

function renderFallbackDays(ctx, body, days) {
  const known = days.filter((d) => d.res);
  if (!known.length) {
    fill(body, unavailable('the KPIs could not be read.'));
    return;
  }
  body.replaceChildren();
  // A day without decisions outside the decisioning holdout has no fallback rate (GetKpis answers 0 for it): it is
  // left out of the line and said so, never plotted as a 0 % rate.
  const holdout = (d) => (d.res.rows ?? []).filter((r) => r.experimentId === HOLDOUT_EXPERIMENT).reduce((n, r) => n + num(r.kpis?.decisions), 0);
  const decided = (d) => d.res && num(d.res.total?.decisions) - holdout(d) > 0;
  const rateText = (d) => (!d.res ? '—' : decided(d) ? fmtPct(d.res.fallbackRate) : num(d.res.total?.decisions) > 0 ? 'holdout only' : 'no decisions');
  const summary = known.map((d) => `${d.day}: ${rateText(d)}`).join('; ');
  const chart = lineChart(body, {
    xs: days.map((d) => Date.parse(d.day) / 1000),
    series: [{ label: 'Fallback rate', values: days.map((d) => (decided(d) ? num(d.res.fallbackRate) : null)) }],
    ariaLabel: `Fallback rate per UTC day, last 7 days: ${summary}`,
    format: (v) => fmtPct(v, 1),
    height: 200,
    xLabel: 'Day (UTC)',
  });
  ctx.onCleanup(() => chart.destroy());
  body.append(h('table', { className: 'data', 'data-testid': 'fallback-days-table' },
    h('caption', { className: 'sr-only' }, 'Fallback rate per day'),
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Day (UTC)'), h('th', { scope: 'col', className: 'num' }, 'Fallback rate'), h('th', { scope: 'col', className: 'num' }, 'Decisions'))),
    h('tbody', {}, days.map((d) => h('tr', {}, h('th', { scope: 'row' }, d.day),
      h('td', { className: 'num', 'data-testid': `fallback-day-${d.day}`, 'data-value': decided(d) ? num(d.res.fallbackRate) : undefined }, rateText(d)),
      h('td', { className: 'num', 'data-testid': `fallback-day-${d.day}-decisions`, 'data-value': d.res ? num(d.res.total?.decisions) : undefined }, d.res ? fmtInt(d.res.total?.decisions) : '—'))))));
}
