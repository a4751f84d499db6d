// Experiments of the serving catalog: status, arms and exposure. Route: GET /v1/experiments.

import { call } from '../api.js';
import { h, fill, num, fmtInt, fmtPct, fmtPctUpTo, fmtTime, enumLabel, section, unavailable } from '../util.js';

/** A status as a text pill (the word carries the meaning; the colour only repeats it). */
export function statusPill(status) {
  const label = enumLabel(status, 'EXPERIMENT_STATUS_');
  const tone = { running: 'good', promoted: 'good', stopped: 'neutral', scheduled: 'neutral' }[label] ?? 'neutral';
  return h('span', { className: `status-pill ${tone}` }, label);
}

export async function render(ctx) {
  ctx.setTitle('Experiments');
  const list = section('Experiments', 'experiments-list');
  ctx.main.append(h('h1', { tabindex: '-1' }, 'Experiments'), list.el);
  let res;
  try {
    res = await call('/v1/experiments', { signal: ctx.signal });
  } catch (err) {
    ctx.fail(err, 'Experiments (GET /v1/experiments)');
    fill(list.body, unavailable('the experiments could not be listed.'));
    return;
  }
  const experiments = res.experiments ?? [];
  if (!experiments.length) {
    fill(list.body, h('p', { 'data-testid': 'experiments-empty' }, `Catalog version ${res.catalogVersion ?? 0} declares no experiments.`));
    return;
  }
  fill(list.body, h('div', { className: 'table-wrap' }, h('table', { className: 'data', 'data-testid': 'experiments-table' },
    h('caption', {}, `${experiments.length} experiment${experiments.length === 1 ? '' : 's'} of catalog version ${res.catalogVersion ?? 0}, in the order written`),
    h('thead', {}, h('tr', {}, ['Experiment', 'Segment', 'Status', 'Arms (weight)', 'Exposure', 'Exposed users', 'Primary metric', 'Guardrails', 'Runs'].map((l, i) => h('th', { scope: 'col', className: i === 5 ? 'num' : '' }, l)))),
    h('tbody', {}, experiments.map((e) => h('tr', { 'data-testid': `experiment-row-${e.id}` },
      h('th', { scope: 'row' }, h('a', { href: `#/experiments/${encodeURIComponent(e.id)}` }, e.id), e.description ? h('div', { className: 'note' }, e.description) : null),
      h('td', {}, e.segmentId ? h('a', { href: `#/segments/${encodeURIComponent(e.segmentId)}` }, e.segmentId) : 'whole catalog'),
      h('td', { 'data-testid': `experiment-status-${e.id}`, 'data-value': e.status ?? '' }, statusPill(e.status), e.promotedArmId ? ` (${e.promotedArmId})` : ''),
      h('td', {}, (e.arms ?? []).map((a, i) => [i ? ', ' : '', h('code', {}, a.id), ` (${num(a.weight).toLocaleString('en-GB')})`]), e.bandit ? h('div', { className: 'note' }, 'bandit allocation') : null),
      h('td', {}, enumLabel(e.exposure, 'EXPOSURE_TRIGGER_'), e.layer ? h('div', { className: 'note' }, `layer ${e.layer}, ${fmtPctUpTo(e.layerShare, 2)}`) : null),
      h('td', { className: 'num', 'data-testid': `exposed-${e.id}`, 'data-value': num(e.exposedUsers) }, fmtInt(e.exposedUsers)),
      h('td', {}, e.primaryMetric || '—', e.minimumDetectableEffect ? h('div', { className: 'note' }, `MDE ${fmtPctUpTo(e.minimumDetectableEffect, 2)}`) : null),
      h('td', {}, (e.guardrails ?? []).join(', ') || 'none'),
      h('td', {}, `${e.startTime ? fmtTime(e.startTime) : 'from publication'} → ${e.stopTime ? fmtTime(e.stopTime) : 'until removed'}`)))))));
}
