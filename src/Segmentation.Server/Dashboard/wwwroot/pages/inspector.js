// Decision inspector: decide for one user with an optional request context and show the decision with its
// rule-by-rule explanation. Route: POST /v1/decide {userId, channel, context, explain: true}.

import { call } from '../api.js';
import { h, fill, num, fmtTime, fmtDuration, enumLabel, section, unavailable } from '../util.js';
import { variantCards } from './segment-detail.js';

const CHANNELS = [['', 'Unspecified (web)'], ['CHANNEL_WEB', 'Web'], ['CHANNEL_EMAIL', 'Email'], ['CHANNEL_ADS', 'Ads'], ['CHANNEL_APP', 'App']];
const STATUS = {
  MATCH_STATUS_WINNER: '★ winner',
  MATCH_STATUS_OUTRANKED: 'outranked (a higher priority won)',
  MATCH_STATUS_OVERRIDDEN: 'overridden',
  MATCH_STATUS_EXCLUDED: 'excluded',
};
const GATES = {
  CONSENT_GATE_FULL_PROFILE: 'Full profile: the whole profile and the request context were read',
  CONSENT_GATE_CONTEXT_ONLY: 'Context only: no personalization consent, only the request context was read',
};

function field(id, label, attrs = {}, options = null) {
  const input = options
    ? h('select', { id, name: id, 'data-testid': id }, options.map(([v, l]) => h('option', { value: v }, l)))
    : h('input', { id, name: id, type: 'text', autocomplete: 'off', 'data-testid': id, ...attrs });
  return { input, el: h('div', {}, h('label', { for: id }, label), input) };
}

export async function render(ctx) {
  ctx.setTitle('Decision inspector');
  const user = field('inspect-user', 'User id', { required: true, maxlength: '256' });
  const channel = field('inspect-channel', 'Channel', {}, CHANNELS);
  const device = field('inspect-device', 'Device (optional)', { list: 'inspect-devices', maxlength: '64', placeholder: 'desktop, mobile, tablet' });
  const country = field('inspect-country', 'Country (optional)', { maxlength: '64', placeholder: 'GB' });
  const pageType = field('inspect-page-type', 'Page type (optional)', { list: 'inspect-page-types', maxlength: '64', placeholder: 'home, product, cart…' });
  // Rules may read the page's path and the search that led there (the default catalog's gift buyers do).
  const pagePath = field('inspect-page-path', 'Page path (optional)', { maxlength: '2048', placeholder: '/gifts/christmas' });
  const searchQuery = field('inspect-search-query', 'Search query (optional)', { maxlength: '512', placeholder: 'christmas gift' });
  const submit = h('button', { type: 'submit', className: 'primary', 'data-testid': 'inspect-submit' }, 'Decide and explain');
  const result = h('div', { 'data-testid': 'inspector-result', 'aria-live': 'polite' });
  const form = h('form', { className: 'card', 'data-testid': 'inspector-form', 'aria-labelledby': 'inspect-form-title' },
    h('h2', { id: 'inspect-form-title' }, 'Request'),
    h('div', { className: 'row' }, user.el, channel.el, device.el, country.el, pageType.el, pagePath.el, searchQuery.el, submit),
    h('datalist', { id: 'inspect-devices' }, ['desktop', 'mobile', 'tablet'].map((v) => h('option', { value: v }))),
    h('datalist', { id: 'inspect-page-types' }, ['home', 'product', 'category', 'cart', 'checkout', 'search'].map((v) => h('option', { value: v }))),
    h('p', { className: 'help' }, 'An explained decision is computed fresh (never from the cache) and is for inspection only: not counted in KPIs or experiments, and not remembered for outcome attribution. Needs a key with the decide scope.'));
  ctx.main.append(h('h1', { tabindex: '-1' }, 'Decision inspector'), form, result);

  const run = async () => {
    const context = {};
    for (const [name, f] of [['device', device], ['country', country], ['pageType', pageType], ['pagePath', pagePath], ['searchQuery', searchQuery]]) {
      if (f.input.value.trim()) {
        context[name] = f.input.value.trim();
      }
    }
    const body = { userId: user.input.value.trim(), context, explain: true };
    if (channel.input.value) {
      body.channel = channel.input.value;
    }
    submit.disabled = true;
    fill(result, h('p', { className: 'loading' }, 'Deciding…'));
    try {
      const res = await call('/v1/decide', { method: 'POST', body, signal: ctx.signal });
      renderDecision(result, res.decision ?? {}, body);
    } catch (err) {
      ctx.fail(err, 'Decide (POST /v1/decide)');
      fill(result, unavailable('no decision was made.'));
    } finally {
      submit.disabled = false;
    }
  };
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    run();
  });

  // A link may name the user; deciding is still the user's action (it is a call to the service, though never counted).
  const preset = ctx.query.get('user');
  if (preset) {
    user.input.value = preset;
  }
  user.input.focus();
}

function renderDecision(root, d, request) {
  const seg = d.segment ?? {};
  const ex = d.explanation ?? {};
  const summary = section('Decision', 'decision');
  const matched = section('Matched segments', 'matched');
  const variants = section('The five variants', 'inspect-variants');
  const explanation = section('Explanation, rule by rule', 'explanation');
  fill(root, summary.el, matched.el, variants.el, explanation.el);

  fill(summary.body,
    h('p', { className: 'notice' }, 'Winner: ', h('strong', { 'data-testid': 'inspector-winner' }, seg.id ?? ''), ` — ${seg.name || ''} (priority ${seg.priority ?? 0}, ${enumLabel(seg.type, 'SEGMENT_TYPE_')})`,
      d.fallbackUsed ? h('strong', { 'data-testid': 'inspector-fallback' }, ' — fallback: no segment matched') : null),
    ex.summary ? h('p', { 'data-testid': 'inspector-summary' }, ex.summary) : null,
    h('dl', { className: 'facts' },
      h('dt', {}, 'User'), h('dd', {}, h('code', {}, d.userId || request.userId)),
      h('dt', {}, 'Consent gate'), h('dd', { 'data-testid': 'inspector-consent', 'data-value': d.consentGate ?? '' }, GATES[d.consentGate] ?? enumLabel(d.consentGate, 'CONSENT_GATE_'),
        ex.consent ? h('div', { className: 'note' }, ex.consent) : null),
      h('dt', {}, 'Contact policy'), h('dd', { 'data-testid': 'inspector-contact', 'data-value': d.contact?.action ?? '' }, contactText(d.contact)),
      h('dt', {}, 'Experiment'), h('dd', { 'data-testid': 'inspector-experiment' }, d.experimentId ? `${d.experimentId}, arm ${d.armId || '—'}` : 'none'),
      h('dt', {}, 'Decision id'), h('dd', {}, h('code', { 'data-testid': 'inspector-decision-id' }, d.decisionId || '—')),
      h('dt', {}, 'Catalog version'), h('dd', {}, String(d.catalogVersion ?? 0)),
      h('dt', {}, 'Evaluated at'), h('dd', {}, `${fmtTime(d.evaluatedAt)}${d.fromCache ? ' (from the decision cache)' : ''}`),
      h('dt', {}, 'Context fields the catalog reads'), h('dd', {}, (ex.contextFieldsRead ?? []).join(', ') || 'none')));

  const list = d.matchedSegments ?? [];
  fill(matched.body, list.length ? h('table', { className: 'data', 'data-testid': 'matched-table' },
    h('caption', { className: 'sr-only' }, 'Segments whose rule matched, highest priority first'),
    h('thead', {}, h('tr', {}, ['Segment', 'Priority', 'Status', 'Suppressed by'].map((l, i) => h('th', { scope: 'col', className: i === 1 ? 'num' : '' }, l)))),
    h('tbody', {}, list.map((m) => h('tr', { 'data-testid': `matched-${m.segment?.id}` },
      h('th', { scope: 'row' }, m.segment?.name || m.segment?.id, ' ', h('code', { className: 'note' }, `(${m.segment?.id})`)),
      h('td', { className: 'num' }, String(m.segment?.priority ?? 0)),
      h('td', { 'data-testid': `matched-${m.segment?.id}-status`, 'data-value': m.status ?? '' }, STATUS[m.status] ?? enumLabel(m.status, 'MATCH_STATUS_')),
      h('td', {}, m.suppressedBy || '—')))))
    : h('p', {}, 'No segment matched: the fallback segment was used.'));

  fill(variants.body, variantCards(d));

  const traces = ex.segments ?? [];
  fill(explanation.body, traces.length
    ? [h('p', { className: 'help' }, 'Every segment of the catalog in priority order; matched ones are open. Each clause shows where it sits in the rule, its result and the value the rule saw.'),
      traces.map((t) => traceDetails(t, seg.id))]
    : h('p', {}, 'No explanation returned.'));
}

function contactText(c) {
  if (!c) {
    return 'No contact policy for this channel: send.';
  }
  const parts = [`${enumLabel(c.action, 'CONTACT_ACTION_')} (channel ${c.channel || '—'}, policy ${c.policy || 'none'})`];
  if (c.engagement) parts.push(`engagement ${c.engagement}`);
  if (c.window || c.count || c.limit !== undefined) {
    const limit = num(c.limit);
    parts.push(`${num(c.count)} counted in the last ${fmtDuration(c.window)}, ${limit < 0 ? 'no cap applied' : `limit ${limit}`}`);
  }
  if (c.sendAt) parts.push(`${c.action === 'CONTACT_ACTION_SUPPRESS' ? 'next allowed' : 'send at'} ${fmtTime(c.sendAt)}`);
  if (c.timeZone) parts.push(`time zone ${c.timeZone}`);
  return [parts.join('; '), c.reason ? h('div', { className: 'note' }, c.reason) : null];
}

function traceDetails(t, winnerId) {
  const id = t.segment?.id ?? '';
  return h('details', { className: 'trace', open: !!t.matched, 'data-testid': `trace-${id}`, 'data-matched': t.matched ? 'true' : 'false' },
    h('summary', {}, t.matched ? '✓ matched' : '✗ not matched', ' — ', h('strong', {}, t.segment?.name || id), ` (${id}, priority ${t.segment?.priority ?? 0})`,
      id === winnerId ? ' ★ winner' : '', t.firstFailingClause ? h('span', { className: 'note' }, ` — first failing clause ${t.firstFailingClause}`) : null),
    (t.clauses ?? []).length ? h('table', { className: 'data' },
      h('caption', { className: 'sr-only' }, `Clauses of ${id}`),
      h('thead', {}, h('tr', {}, ['Clause', 'Result', 'Actual value'].map((l) => h('th', { scope: 'col' }, l)))),
      h('tbody', {}, t.clauses.map((c, i) => h('tr', { 'data-testid': `clause-${id}-${i}`, 'data-result': c.result ? 'true' : 'false' },
        h('th', { scope: 'row', style: { paddingLeft: `${0.5 + ((c.path ?? '').split('.').length - 1) * 1.2}rem` } },
          h('code', {}, c.description || '(clause)'), h('div', { className: 'clause-path mono' }, c.path ?? '')),
        h('td', { className: c.result ? 'good' : 'bad' }, c.result ? '✓ true' : '✗ false'),
        h('td', { className: 'mono' }, c.actualValue ?? '')))))
      : h('p', { className: 'note' }, 'No clauses evaluated (the fallback, or a rule with no conditions).'));
}
