// One experiment's results: arms, exposure, lift with its confidence and always-valid intervals, the sample
// ratio check, guardrails and the recommendation; promoting an arm. Routes: GET /v1/experiments/{id}/results,
// POST /v1/experiments/{id}/promote.

import { call, describeError } from '../api.js';
import { h, fill, num, fmtInt, fmtDec, fmtPct, fmtPctUpTo, fmtLift, fmtTime, enumLabel, section, unavailable } from '../util.js';
import { statusPill } from './experiments.js';

const RATE_METRICS = new Set(['ctr', 'conversion_rate', 'unsubscribe_rate', 'open_rate', 'churn_rate']);

/** A metric's value: a rate as a percentage, anything else (revenue per user) as a decimal. */
const fmtMetric = (metric, v) => (RATE_METRICS.has(metric) ? fmtPct(v, 2) : fmtDec(v, 2));
/** A difference of means: percentage points for rates. */
function fmtDiff(metric, v) {
  const n = num(v);
  const sign = n > 0 ? '+' : n < 0 ? '−' : '±';
  return RATE_METRICS.has(metric) ? `${sign}${fmtDec(Math.abs(n) * 100, 2)} pp` : `${sign}${fmtDec(Math.abs(n), 2)}`;
}
/** An interval as "[lower, upper]"; it may wrap after the comma only. */
const fmtInterval = (i, f) => ['[', h('span', { className: 'nowrap' }, f(i?.lower)), ', ', h('span', { className: 'nowrap' }, f(i?.upper)), ']'];
const fmtP = (p) => (num(p) < 0.0001 ? '< 0.0001' : fmtDec(p, 4));

function verdictText(v) {
  return { VERDICT_BETTER: '▲ better', VERDICT_WORSE: '▼ worse', VERDICT_INCONCLUSIVE: '– inconclusive' }[v] ?? '–';
}

export async function render(ctx) {
  const id = ctx.params[0];
  ctx.setTitle(`Experiment ${id}`);
  const title = h('h1', { tabindex: '-1' }, 'Experiment ', h('code', {}, id));
  const summary = section('Recommendation', 'recommendation-section');
  const arms = section('Arms', 'arms', h('p', { className: 'help' },
    'Lift: treatment mean / control mean − 1 on the primary metric, with its 95 % fixed-horizon confidence interval (valid for one look at a planned sample size) and the always-valid 95 % interval (a confidence sequence: safe to look at every day). The verdict follows the always-valid interval.'));
  const primary = section('Primary metric comparisons', 'primary');
  const guardrails = section('Guardrails', 'guardrails');
  const breakdowns = section('Per segment', 'breakdowns');
  // After a promotion the page is rendered again (the status, the promoted arm) with the result as its notice.
  const promoteResult = h('p', { role: 'status', 'data-testid': 'promote-result', tabindex: '-1', 'data-notice': '' }, ctx.notice ?? '');
  ctx.main.append(h('p', {}, h('a', { href: '#/experiments' }, '← All experiments')), title, summary.el, arms.el, primary.el, guardrails.el);

  let res;
  try {
    res = await call(`/v1/experiments/${encodeURIComponent(id)}/results`, { signal: ctx.signal });
  } catch (err) {
    ctx.fail(err, `Results of ${id} (GET /v1/experiments/{id}/results)`);
    for (const s of [summary, arms, primary, guardrails]) {
      fill(s.body, unavailable('the results could not be read.'));
    }
    if (ctx.notice) {
      ctx.main.append(promoteResult); // the promotion happened even if its results cannot be read now
    }
    return;
  }
  const e = res.experiment ?? {};
  const metric = e.primaryMetric ?? '';
  fill(title, 'Experiment ', h('code', {}, e.id || id), ' ', h('span', { 'data-testid': 'experiment-status', 'data-value': e.status ?? '' }, statusPill(e.status)));
  const comparisons = res.comparisons ?? [];
  const primaryOf = (armId) => comparisons.find((c) => c.armId === armId && !c.guardrail);
  const srm = res.sampleRatio ?? {};

  fill(summary.body,
    h('p', {}, e.description || ''),
    h('dl', { className: 'facts' },
      h('dt', {}, 'Recommendation'), h('dd', {}, h('strong', { 'data-testid': 'recommendation', 'data-value': res.recommendation ?? '' }, enumLabel(res.recommendation, 'RECOMMENDATION_')),
        res.winningArmId ? [' — winning arm ', h('code', { 'data-testid': 'winning-arm' }, res.winningArmId)] : null),
      h('dt', {}, 'Why'), h('dd', { 'data-testid': 'recommendation-reason' }, res.reason || '—'),
      h('dt', {}, 'Sample ratio'), srm.notCheckedReason
        ? h('dd', { 'data-testid': 'srm-status', 'data-value': 'not-checked' }, `Not checked: ${srm.notCheckedReason}`)
        : h('dd', { 'data-testid': 'srm-status', 'data-value': srm.mismatch ? 'mismatch' : 'ok', className: srm.mismatch ? 'bad' : '' },
          srm.mismatch ? '⚠ Sample ratio mismatch: the split is broken, no result is to be trusted' : '✓ No sample ratio mismatch',
          ` (χ² ${fmtDec(srm.chiSquared, 3)}; exact binomial p ${fmtP(srm.pValue)}; mismatch when p < 0.001)`),
      h('dt', {}, 'Segment'), h('dd', {}, e.segmentId ? h('a', { href: `#/segments/${encodeURIComponent(e.segmentId)}` }, e.segmentId) : 'whole catalog'),
      h('dt', {}, 'Primary metric'), h('dd', {}, metric || '—', e.minimumDetectableEffect ? ` (minimum detectable effect ${fmtPctUpTo(e.minimumDetectableEffect, 2)})` : ''),
      h('dt', {}, 'Users per arm needed (one look; the always-valid test needs more)'), h('dd', { 'data-testid': 'users-per-arm-needed', 'data-value': num(res.usersPerArmNeeded) }, num(res.usersPerArmNeeded) ? fmtInt(res.usersPerArmNeeded) : 'not computed (no effect declared or no control data)'),
      h('dt', {}, res.analyzedSince ? 'Exposed users (all, before the split changed too)' : 'Exposed users'), h('dd', { 'data-testid': 'experiment-exposed', 'data-value': num(e.exposedUsers) }, `${fmtInt(e.exposedUsers)} (exposure on ${enumLabel(e.exposure, 'EXPOSURE_TRIGGER_')})`),
      h('dt', {}, 'Computed'), h('dd', {}, fmtTime(res.computedAt)),
      res.analyzedSince ? [h('dt', {}, 'Users analyzed'), h('dd', { 'data-testid': 'analyzed-since', 'data-value': res.analyzedSince },
        `Assigned since ${fmtTime(res.analyzedSince)}, when the split changed: earlier users keep their arms and are left out`)] : null));

  const promote = async (armId) => {
    if (!window.confirm(`Promote arm '${armId}' of experiment '${id}'?\n\nThis publishes a new catalog version in which the arm's variants are served to everyone the segment wins (undo with a catalog rollback).`)) {
      return;
    }
    promoteResult.textContent = `Promoting ${armId}…`;
    try {
      const r = await call(`/v1/experiments/${encodeURIComponent(id)}/promote`, { method: 'POST', body: { armId, comment: `promoted from the dashboard: arm ${armId}` }, signal: ctx.signal });
      const warnings = (r.warnings ?? []).length;
      ctx.reload(`Promoted arm ${r.armId || armId}: catalog version ${r.catalogVersion ?? '?'} published${warnings ? ` with ${warnings} audit warning${warnings === 1 ? '' : 's'}` : ''}.`);
    } catch (err) {
      promoteResult.textContent = err?.status === 403
        ? `Not promoted: ${describeError(err)} Promoting needs a key with the admin scope.`
        : `Not promoted: ${describeError(err)}`;
      ctx.fail(err, `Promote ${armId}`);
    }
  };

  const controlMean = (res.arms ?? []).find((a) => a.armId === res.controlArmId)?.metrics?.find((m) => m.metric === metric)?.mean;
  const armRows = (res.arms ?? []).map((a) => {
    const isControl = a.armId === res.controlArmId;
    const value = (a.metrics ?? []).find((m) => m.metric === metric);
    const c = primaryOf(a.armId);
    const lift = (show) => (!c ? '—' : hasLift(controlMean) ? show() : NO_LIFT);
    return h('tr', { 'data-testid': `arm-${a.armId}` },
      h('th', { scope: 'row' }, h('code', {}, a.armId), isControl ? ' (control)' : '', a.armId === res.winningArmId ? ' ★ winner' : '', a.armId === e.promotedArmId ? ' (promoted)' : ''),
      h('td', { className: 'num' }, num(a.weight).toLocaleString('en-GB'), h('div', { className: 'note' }, `expected ${fmtPct(a.expectedShare, 1)}`)),
      h('td', { className: 'num', 'data-testid': `arm-${a.armId}-assigned`, 'data-value': num(a.assignedUsers) }, fmtInt(a.assignedUsers)),
      h('td', { className: 'num', 'data-testid': `arm-${a.armId}-exposed`, 'data-value': num(a.exposedUsers) }, fmtInt(a.exposedUsers)),
      h('td', { className: 'num', 'data-testid': `arm-${a.armId}-primary`, 'data-value': value ? num(value.mean) : undefined }, value ? fmtMetric(metric, value.mean) : '—',
        value ? h('div', { className: 'note' }, `${fmtInt(value.users)} users, total ${fmtDec(value.total, RATE_METRICS.has(metric) ? 0 : 2)}`) : null),
      h('td', { className: 'num', 'data-testid': `arm-${a.armId}-lift`, 'data-value': c && hasLift(controlMean) ? num(c.lift) : undefined }, c ? lift(() => fmtLift(c.lift)) : isControl ? 'baseline' : '—'),
      h('td', { className: 'num wrap', 'data-testid': `arm-${a.armId}-lift-ci` }, lift(() => fmtInterval(c.liftCi, fmtLift))),
      h('td', { className: 'num wrap', 'data-testid': `arm-${a.armId}-sequential-lift` }, lift(() => fmtInterval(c.sequentialLift, fmtLift))),
      h('td', { 'data-testid': `arm-${a.armId}-verdict`, 'data-value': c?.verdict ?? '' }, c ? verdictText(c.verdict) : '—'),
      h('td', { className: 'num' }, c ? fmtP(c.adjustedPValue) : '—'),
      h('td', {}, h('button', { type: 'button', className: 'danger', 'data-testid': `promote-${a.armId}`, on: { click: () => promote(a.armId) } }, 'Promote', h('span', { className: 'sr-only' }, ` arm ${a.armId}`))));
  });
  fill(arms.body, h('div', { className: 'table-wrap' }, h('table', { className: 'data', 'data-testid': 'arms-table' },
    h('caption', {}, `Arms of ${e.id || id}, control first; primary metric: ${metric || '—'}`),
    h('thead', {}, h('tr', {}, ['Arm', 'Weight', 'Assigned users', 'Exposed users', `Primary (${metric || '—'})`, 'Lift', '95 % CI of lift', 'Always-valid 95 % interval', 'Verdict', 'Adjusted p', 'Action']
      .map((l, i) => h('th', { scope: 'col', className: i >= 1 && i <= 7 || i === 9 ? 'num' : '' }, l)))),
    h('tbody', {}, armRows))),
  h('p', { className: 'note' }, 'Promoting publishes a new catalog version and needs a key with the admin scope.'), promoteResult);

  const experimentMean = (armId, m) => (res.arms ?? []).find((a) => a.armId === armId)?.metrics?.find((v) => v.metric === m)?.mean;
  fill(primary.body, comparisonTable('primary-comparisons', comparisons.filter((c) => !c.guardrail), res.controlArmId, experimentMean));
  const guards = comparisons.filter((c) => c.guardrail);
  fill(guardrails.body, guards.length ? comparisonTable('guardrail-comparisons', guards, res.controlArmId, experimentMean) : h('p', {}, (e.guardrails ?? []).length ? 'No guardrail comparisons yet.' : 'No guardrails declared.'));
  if ((res.breakdowns ?? []).length) {
    ctx.main.append(breakdowns.el);
    fill(breakdowns.body, (res.breakdowns ?? []).map((b) => [
      h('h3', {}, `${b.segmentId}: ${fmtInt(b.exposedUsers)} exposed users`),
      // The segment's own means (its users only), the ones its comparisons compare.
      comparisonTable(`breakdown-${b.segmentId}`, b.comparisons ?? [], res.controlArmId,
        (armId) => (b.arms ?? []).find((a) => a.armId === armId)?.primary?.mean)]));
  }
}

/** A relative lift exists only against a control whose mean is not 0 (the service then sends 0 in its place). */
const hasLift = (controlMean) => Math.abs(num(controlMean)) > 0;
const NO_LIFT = 'n/a (control mean 0)';

/**
 * Every comparison in full: the two means compared (meanOf(armId, metric) among the same users as the comparison),
 * difference and lift with both intervals, the test and the p-values.
 */
function comparisonTable(name, list, controlArmId, meanOf) {
  if (!list.length) {
    return h('p', {}, 'No comparisons yet (no exposed users in a treatment arm or the control).');
  }
  return h('div', { className: 'table-wrap' }, h('table', { className: 'data', 'data-testid': name },
    h('caption', { className: 'sr-only' }, 'Treatment arms against the control'),
    h('thead', {}, h('tr', {}, ['Metric · arm', 'Control', 'Arm', 'Difference', '95 % CI', 'Always-valid', 'Lift', '95 % CI', 'Always-valid', 'Verdict', 'Test', 'p', 'Adjusted p']
      .map((l, i) => h('th', { scope: 'col', className: i > 0 && i < 9 || i > 10 ? 'num' : '' }, l)))),
    h('tbody', {}, list.map((c) => [c, hasLift(meanOf(controlArmId, c.metric))]).map(([c, liftKnown]) => h('tr', { 'data-testid': `${name}-${c.metric}-${c.armId}` },
      h('th', { scope: 'row' }, `${c.metric} · `, h('code', {}, c.armId)),
      h('td', { className: 'num', 'data-testid': `${name}-${c.metric}-${c.armId}-control`, 'data-value': num(meanOf(controlArmId, c.metric)) }, fmtMetric(c.metric, meanOf(controlArmId, c.metric))),
      h('td', { className: 'num', 'data-testid': `${name}-${c.metric}-${c.armId}-arm`, 'data-value': num(meanOf(c.armId, c.metric)) }, fmtMetric(c.metric, meanOf(c.armId, c.metric))),
      h('td', { className: 'num' }, fmtDiff(c.metric, c.difference)),
      h('td', { className: 'num wrap' }, fmtInterval(c.differenceCi, (v) => fmtDiff(c.metric, v))),
      h('td', { className: 'num wrap' }, fmtInterval(c.sequentialDifference, (v) => fmtDiff(c.metric, v))),
      h('td', { className: 'num' }, liftKnown ? fmtLift(c.lift) : NO_LIFT),
      h('td', { className: 'num wrap' }, liftKnown ? fmtInterval(c.liftCi, fmtLift) : NO_LIFT),
      h('td', { className: 'num wrap' }, liftKnown ? fmtInterval(c.sequentialLift, fmtLift) : NO_LIFT),
      h('td', {}, verdictText(c.verdict)),
      h('td', {}, c.test || '—', c.cuped ? h('div', { className: 'note' }, `CUPED, variance −${fmtPct(c.varianceReduction, 0)}`) : null),
      h('td', { className: 'num' }, fmtP(c.pValue)),
      h('td', { className: 'num' }, fmtP(c.adjustedPValue)))))));
}
