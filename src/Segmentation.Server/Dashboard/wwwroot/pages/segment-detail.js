// One segment: its definition, its five variants rendered for a sample member, its size over time and its
// members a page at a time. Routes: GET /v1/catalog, GET /v1/segments, GET /v1/segment-sizes,
// GET /v1/segments/{id}/members, POST /v1/decide.

import { call } from '../api.js';
import { hourlySeries, lineChart } from '../charts.js';
import { h, fill, num, fmtInt, fmtPct, fmtTime, enumLabel, section, unavailable } from '../util.js';

const DAY = 86400e3;
const PAGE_SIZE = 50;
export const VARIANT_KINDS = ['content', 'offer', 'cta', 'journey', 'messaging'];

export async function render(ctx) {
  const id = ctx.params[0];
  ctx.setTitle(`Segment ${id}`);
  const { signal } = ctx;
  const catalog = call('/v1/catalog', { signal });
  const list = call('/v1/segments', { signal });
  const sizes = call('/v1/segment-sizes', { query: { segmentId: id, start: new Date(Date.now() - 30 * DAY).toISOString() }, signal });
  const firstPage = call(`/v1/segments/${encodeURIComponent(id)}/members`, { query: { pageSize: PAGE_SIZE }, signal });

  const title = h('h1', { tabindex: '-1' }, 'Segment ', h('code', {}, id));
  const definition = section('Definition', 'definition');
  const variants = section('Variants, as rendered for a sample member', 'variants');
  const size = section('Size over the last 30 days', 'size');
  const members = section('Members', 'members');
  ctx.main.append(h('p', {}, h('a', { href: '#/segments' }, '← All segments')), title, definition.el, variants.el, size.el, members.el);

  Promise.allSettled([catalog, list]).then(([c, l]) => {
    if (c.status === 'rejected') {
      ctx.fail(c.reason, 'Catalog (GET /v1/catalog)');
    }
    if (l.status === 'rejected') {
      ctx.fail(l.reason, 'Segment counts (GET /v1/segments)');
    }
    const cat = c.status === 'fulfilled' ? c.value : null;
    const seg = cat?.segments?.find((s) => s.segment?.id === id);
    const counts = l.status === 'fulfilled' ? l.value.segments?.find((s) => s.segment?.id === id) : null;
    if (seg?.segment?.name) {
      fill(title, seg.segment.name, ' ', h('code', { className: 'note' }, `(${id})`));
      ctx.setTitle(seg.segment.name);
    }
    if (!seg && cat) {
      fill(definition.body, unavailable(`the active catalog (version ${cat.version ?? 0}) has no segment '${id}'.`));
      return;
    }
    renderDefinition(definition.body, seg, cat, counts, l.status === 'fulfilled' ? l.value : null);
  });

  sizes.then((s) => renderSize(ctx, size.body, id, s.segments?.find((x) => x.segmentId === id)?.points ?? []), (err) => {
    ctx.fail(err, 'Segment sizes (GET /v1/segment-sizes)');
    fill(size.body, unavailable('the size history could not be read.'));
  });

  const pager = membersPager(ctx, members.body, id);
  firstPage.then((page) => {
    pager.show(page);
    const sample = page.userIds?.[0];
    if (!sample) {
      fill(variants.body, h('p', {}, 'The segment has no members now, so there is no member to render its variants for.'));
      return null;
    }
    // Rendering is a real decision (counted in the KPIs and in experiments' exposure), so it is asked for, not automatic.
    const render = h('button', { type: 'button', 'data-testid': 'render-sample' }, `Render the variants for member ${sample}`);
    render.addEventListener('click', () => {
      render.disabled = true;
      call('/v1/decide', { method: 'POST', body: { userId: sample, explain: false }, signal })
        .then((r) => renderVariants(variants.body, id, sample, r.decision ?? {}), (err) => {
          ctx.fail(err, `Decide for sample member ${sample} (POST /v1/decide)`);
          fill(variants.body, unavailable('the sample decision could not be made.'));
        });
    });
    fill(variants.body, h('p', { className: 'help' }, 'Rendering asks the service for a decision for one member, which is counted like any served decision (KPIs, experiment exposure). Needs a key with the decide scope.'), render);
    return null;
  }, (err) => {
    ctx.fail(err, 'Members (GET /v1/segments/{id}/members)');
    fill(members.body, unavailable('the members could not be listed.'));
    fill(variants.body, unavailable('no member to render the variants for.'));
  });
  await Promise.allSettled([catalog, list, sizes, firstPage]);
}

function renderDefinition(body, seg, cat, counts, list) {
  const ref = seg?.segment ?? counts?.segment ?? {};
  const persona = seg?.persona ? cat?.personas?.find((p) => p.id === seg.persona) : null;
  fill(body,
    h('dl', { className: 'facts' },
      h('dt', {}, 'Type'), h('dd', { 'data-testid': 'segment-type', title: ref.type }, enumLabel(ref.type, 'SEGMENT_TYPE_')),
      h('dt', {}, 'Priority'), h('dd', { 'data-testid': 'segment-priority' }, String(ref.priority ?? 0)),
      h('dt', {}, 'Members now'), h('dd', {}, counts
        ? [h('span', { 'data-testid': 'segment-members', 'data-value': num(counts.memberCount) }, fmtInt(counts.memberCount)), ` (${fmtPct(counts.share)} of ${fmtInt(list?.population)} profiles)`]
        : '—'),
      seg ? [
        h('dt', {}, 'Description'), h('dd', {}, seg.description || '—'),
        h('dt', {}, 'Persona'), h('dd', { 'data-testid': 'segment-persona' }, seg.persona ? (persona ? `${persona.name} (${persona.id})${persona.role ? ` — ${persona.role}` : ''}` : seg.persona) : 'none'),
        h('dt', {}, 'Overrides'), h('dd', {}, (seg.overrides ?? []).length ? seg.overrides.join(', ') : 'none'),
        h('dt', {}, 'Excludes members of'), h('dd', {}, (seg.exclusions ?? []).length ? seg.exclusions.join(', ') : 'none'),
        h('dt', {}, 'Fallback'), h('dd', {}, seg.fallback ? 'yes: served to unknown users and thin data' : 'no'),
        h('dt', {}, 'Defined in'), h('dd', { className: 'mono' }, seg.sourceFile || '—'),
        h('dt', {}, 'Fields read'), h('dd', {}, (seg.fieldsRead ?? []).length
          ? (seg.fieldsRead ?? []).map((f, i) => [i ? ', ' : '', h('code', {}, f.field), f.layer ? ` (${enumLabel(f.layer, 'DATA_LAYER_')})` : ' (request context)'])
          : 'none'),
      ] : null),
    seg ? [h('h3', {}, 'Rule'), h('pre', { 'data-testid': 'segment-rule' }, h('code', {}, seg.rule || '(no rule)'))] : null,
    persona ? h('details', {}, h('summary', {}, `Persona card: ${persona.name}`), h('dl', { className: 'facts' },
      [['Goals', persona.goals], ['Pain points', persona.painPoints], ['Behaviour', persona.behaviour], ['Channels', persona.channels], ['Triggers', persona.triggers],
        ['Tone', persona.tone], ['Messaging', persona.messaging], ['Objections', persona.objections]]
        .map(([k, v]) => [h('dt', {}, k), h('dd', {}, Array.isArray(v) ? v.join('; ') || '—' : v || '—')]))) : null);
}

/** The five rendered variants of a decision. */
export function variantCards(decision) {
  return h('div', { className: 'variants' }, VARIANT_KINDS.map((kind) => {
    const v = decision[kind] ?? {};
    return h('article', { className: 'variant', 'aria-labelledby': `variant-${kind}-title` },
      h('h3', { id: `variant-${kind}-title` }, kind === 'cta' ? 'Call to action' : kind),
      h('p', { className: 'text', 'data-testid': `variant-${kind}` }, v.text ?? ''),
      h('p', { className: 'note' }, h('code', { 'data-testid': `variant-id-${kind}` }, v.variantId || '(no variant id)'), v.fallbackUsed ? ' — template failed: fallback text used' : ''));
  }));
}

function renderVariants(body, id, sample, d) {
  const winner = d.segment?.id;
  fill(body,
    h('p', {}, 'Rendered for member ', h('code', { 'data-testid': 'sample-user' }, sample),
      ' (the first member in user id order) by decision ', h('code', {}, d.decisionId || '—'), ` at ${fmtTime(d.evaluatedAt)}, catalog version ${d.catalogVersion ?? 0}.`,
      ' ', h('a', { href: `#/inspect?user=${encodeURIComponent(sample)}` }, 'Inspect this decision')),
    winner !== id ? h('p', { className: 'flag', 'data-testid': 'sample-winner-differs' },
      `For this member the decision is won by '${winner || '(none)'}', not '${id}' (a higher-priority segment matched, or the consent gate or an override applied), so these are ${winner || 'its'}'s variants.`) : null,
    d.experimentId ? h('p', { className: 'note' }, `In experiment ${d.experimentId}, arm ${d.armId || '—'}: the arm's variants are shown.`) : null,
    variantCards(d));
}

function renderSize(ctx, body, id, points) {
  if (!points.length) {
    fill(body, h('p', {}, 'No hourly size samples in the last 30 days.'));
    return;
  }
  const values = points.map((p) => num(p.members));
  const series = hourlySeries(points, (p) => num(p.members));
  const summary = `${fmtInt(values[0])} members at ${fmtTime(points[0].hour)}, ${fmtInt(values.at(-1))} at ${fmtTime(points.at(-1).hour)}; lowest ${fmtInt(Math.min(...values))}, highest ${fmtInt(Math.max(...values))}; ${points.length} hourly points.`;
  body.replaceChildren(h('p', { 'data-testid': 'size-summary' }, summary));
  const chart = lineChart(body, { xs: series.xs, series: [{ label: `${id} members`, values: series.values }], ariaLabel: `Members of ${id} per hour over the last 30 days: ${summary}`, format: (v) => fmtInt(v), height: 240 });
  ctx.onCleanup(() => chart.destroy());
  // Text alternative: the last sample of each UTC day.
  const daily = new Map();
  points.forEach((p) => daily.set(p.hour.slice(0, 10), p));
  body.append(h('details', {}, h('summary', {}, 'Data table (last sample of each day)'),
    h('table', { className: 'data' }, h('caption', { className: 'sr-only' }, `Members of ${id} per day`),
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Hour (UTC)'), h('th', { scope: 'col', className: 'num' }, 'Members'))),
      h('tbody', {}, [...daily.values()].map((p) => h('tr', {}, h('th', { scope: 'row' }, fmtTime(p.hour)), h('td', { className: 'num' }, fmtInt(p.members))))))));
}

function membersPager(ctx, body, id) {
  const tokens = ['']; // tokens[i] is the token of page i
  let index = 0;
  const status = h('p', { 'data-testid': 'members-status', role: 'status' });
  const listEl = h('ol', { className: 'members', 'data-testid': 'members-list' });
  const prev = h('button', { type: 'button', 'data-testid': 'members-prev', on: { click: () => go(index - 1) } }, '← Previous');
  const next = h('button', { type: 'button', 'data-testid': 'members-next', on: { click: () => go(index + 1) } }, 'Next →');
  const total = h('span', { 'data-testid': 'members-total' });

  function show(page) {
    const ids = page.userIds ?? [];
    if (page.nextPageToken) {
      tokens[index + 1] = page.nextPageToken;
    } else {
      tokens.length = index + 1;
    }
    total.dataset.value = String(num(page.total));
    total.textContent = fmtInt(page.total);
    listEl.start = index * PAGE_SIZE + 1;
    fill(listEl, ids.map((u) => h('li', {}, h('a', { href: `#/inspect?user=${encodeURIComponent(u)}`, title: `Inspect the decision for ${u}` }, u))));
    fill(status, ids.length
      ? `Members ${fmtInt(index * PAGE_SIZE + 1)}–${fmtInt(index * PAGE_SIZE + ids.length)} of `
      : 'No members on this page; total ', total, ` (page ${index + 1}, in user id order).`);
    prev.disabled = index === 0;
    next.disabled = !page.nextPageToken;
    if (!body.contains(listEl)) {
      fill(body, status, listEl, h('div', { className: 'pager' }, prev, next)); // once: the buttons keep focus when paging
    }
  }

  let busy = false;
  async function go(to) {
    if (busy || to < 0 || to >= tokens.length) {
      return;
    }
    busy = true; // the buttons stay enabled so that the one pressed keeps focus
    listEl.setAttribute('aria-busy', 'true');
    try {
      const page = await call(`/v1/segments/${encodeURIComponent(id)}/members`, { query: { pageSize: PAGE_SIZE, pageToken: tokens[to] }, signal: ctx.signal });
      const focused = document.activeElement;
      index = to;
      show(page);
      if (focused?.disabled) {
        (focused === next ? prev : next).focus(); // the pressed button became disabled (first or last page)
      }
    } catch (err) {
      ctx.fail(err, 'Members (GET /v1/segments/{id}/members)');
    } finally {
      busy = false;
      listEl.removeAttribute('aria-busy');
    }
  }

  return { show };
}
