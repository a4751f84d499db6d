// Segments: the catalog in priority order with live counts, size sparklines, the overlap heatmap and audit
// warnings. Routes: GET /v1/segments, GET /v1/catalog, POST /v1/catalog/audit, GET /v1/segment-sizes.

import { call } from '../api.js';
import { hourlySeries, sparkline, viridis } from '../charts.js';
import { h, fill, num, fmtInt, fmtPct, fmtTime, enumLabel, section, unavailable } from '../util.js';

const DAY = 86400e3;

export async function render(ctx) {
  ctx.setTitle('Segments');
  const { signal } = ctx;
  const list = call('/v1/segments', { signal });
  const catalog = call('/v1/catalog', { signal });
  const audit = call('/v1/catalog/audit', { method: 'POST', body: {}, signal });
  const sizes = allSizes(new Date(Date.now() - 7 * DAY).toISOString(), signal);

  const summary = section('Catalog', 'catalog');
  const table = section('Segments in priority order', 'segments', h('p', { className: 'help' },
    'Members now: users whose profile matches the rule with no request context (ListSegments). Share: members / population. Size: hourly member counts of the last 7 days (GetSegmentSizes). Warnings: audit warnings about the segment.'));
  const overlap = section('Overlap matrix', 'overlap', h('p', { className: 'help' },
    'Members two segments have in common (AuditCatalog, measured over every profile with no request context). A user in both is served the segment that wins priority resolution.'));
  const warnings = section('Audit warnings', 'warnings');
  const details = section('Catalog details', 'catalog-details');
  ctx.main.append(h('h1', { tabindex: '-1' }, 'Segments'), summary.el, table.el, overlap.el, warnings.el, details.el);

  const [listResult, catalogResult] = await Promise.allSettled([list, catalog]);
  const cat = catalogResult.status === 'fulfilled' ? catalogResult.value : null;
  if (!cat) {
    ctx.fail(catalogResult.reason, 'Catalog (GET /v1/catalog)');
  }
  renderSummary(summary.body, listResult.status === 'fulfilled' ? listResult.value : null, cat);
  if (cat) {
    renderDetails(details.body, cat);
  } else {
    fill(details.body, unavailable('the catalog could not be read.'));
  }
  if (listResult.status !== 'fulfilled') {
    ctx.fail(listResult.reason, 'Segments (GET /v1/segments)');
    fill(table.body, unavailable('the segment counts could not be read.'));
  } else {
    renderTable(table.body, listResult.value, cat);
  }

  audit.then((a) => {
    renderWarningCounts(table.body, a);
    renderOverlap(overlap.body, a, cat);
    renderWarnings(warnings.body, a);
  }, (err) => {
    ctx.fail(err, 'Audit (POST /v1/catalog/audit)');
    fill(overlap.body, unavailable('the audit could not be run.'));
    fill(warnings.body, unavailable('the audit could not be run.'));
    table.body.querySelectorAll('[data-testid^="warnings-"]').forEach((td) => fill(td, '—'));
  });

  sizes.then((s) => renderSparklines(ctx, table.body, s), (err) => {
    ctx.fail(err, 'Segment sizes (GET /v1/segment-sizes)');
    table.body.querySelectorAll('[data-testid^="size-"]').forEach((td) => fill(td, '—'));
  });
  await Promise.allSettled([audit, sizes]);
}

// Every page of GET /v1/segment-sizes (100 segments each), as one answer. A page token refused (INVALID_ARGUMENT: a
// catalog was published since the previous page) starts the pages again, once.
async function allSizes(start, signal, again = true) {
  const segments = [];
  let pageToken = '';
  do {
    let page;
    try {
      page = await call('/v1/segment-sizes', { query: pageToken ? { start, pageToken } : { start }, signal });
    } catch (err) {
      if (pageToken && again && err?.code === INVALID_ARGUMENT) {
        return allSizes(start, signal, false);
      }
      throw err;
    }
    segments.push(...(page.segments ?? []));
    pageToken = page.nextPageToken ?? '';
  } while (pageToken);
  return { segments };
}

const INVALID_ARGUMENT = 3;

function renderSummary(body, list, cat) {
  fill(body, h('dl', { className: 'facts' },
    h('dt', {}, 'Population'), h('dd', { 'data-testid': 'population', 'data-value': list ? num(list.population) : undefined }, list ? fmtInt(list.population) : '—'),
    h('dt', {}, 'Catalog'), h('dd', { 'data-testid': 'catalog-version' }, cat ? `${cat.name || '(unnamed)'} version ${cat.version ?? '0'}` : list ? `version ${list.catalogVersion ?? '0'}` : '—'),
    cat ? [
      h('dt', {}, 'Loaded'), h('dd', {}, `${fmtTime(cat.loadedAt)} from ${cat.origin || '—'}`),
      h('dt', {}, 'Fallback segment'), h('dd', {}, h('code', {}, cat.fallbackSegmentId || '—')),
      h('dt', {}, 'Context fields read'), h('dd', {}, (cat.contextFieldsRead ?? []).length ? (cat.contextFieldsRead ?? []).join(', ') : 'none'),
    ] : null));
}

function renderTable(body, list, cat) {
  const byId = new Map((cat?.segments ?? []).map((s) => [s.segment?.id, s]));
  const rows = (list.segments ?? []).map((m) => {
    const s = m.segment ?? {};
    const c = byId.get(s.id);
    return h('tr', { 'data-testid': `segment-row-${s.id}` },
      h('td', { className: 'num', 'data-testid': `priority-${s.id}` }, String(s.priority ?? 0)),
      h('th', { scope: 'row' }, h('a', { href: `#/segments/${encodeURIComponent(s.id)}` }, s.name || s.id), c?.fallback ? ' (fallback)' : ''),
      h('td', {}, h('code', {}, s.id)),
      h('td', { title: s.type }, enumLabel(s.type, 'SEGMENT_TYPE_')),
      h('td', { className: 'num', 'data-testid': `members-${s.id}`, 'data-value': num(m.memberCount) }, fmtInt(m.memberCount)),
      h('td', { className: 'num', 'data-testid': `share-${s.id}`, 'data-value': num(m.share) }, fmtPct(m.share)),
      h('td', { 'data-testid': `size-${s.id}` }, h('span', { className: 'loading' }, '…')),
      h('td', { className: 'num', 'data-testid': `warnings-${s.id}` }, h('span', { className: 'loading' }, '…')));
  });
  fill(body, h('div', { className: 'table-wrap' }, h('table', { className: 'data', 'data-testid': 'segments-table' },
    h('caption', {}, `${(list.segments ?? []).length} segments of catalog version ${list.catalogVersion ?? '0'}, highest priority first`),
    h('thead', {}, h('tr', {}, ['Priority', 'Name', 'Id', 'Type', 'Members now', 'Share of population', 'Size, last 7 days', 'Warnings']
      .map((label, i) => h('th', { scope: 'col', className: [0, 4, 5, 7].includes(i) ? 'num' : '' }, label)))),
    h('tbody', {}, rows))));
}

function renderWarningCounts(body, audit) {
  const counts = new Map();
  for (const w of audit.warnings ?? []) {
    counts.set(w.segment, (counts.get(w.segment) ?? 0) + 1);
  }
  body.querySelectorAll('[data-testid^="warnings-"]').forEach((td) => {
    const id = td.dataset.testid.slice('warnings-'.length);
    const n = counts.get(id) ?? 0;
    td.dataset.value = String(n);
    fill(td, String(n));
  });
}

function renderSparklines(ctx, body, sizes) {
  const byId = new Map((sizes.segments ?? []).map((s) => [s.segmentId, s.points ?? []]));
  body.querySelectorAll('[data-testid^="size-"]').forEach((td) => {
    const id = td.dataset.testid.slice('size-'.length);
    const points = byId.get(id) ?? [];
    if (!points.length) {
      fill(td, h('span', { className: 'note' }, 'no samples'));
      return;
    }
    const values = points.map((p) => num(p.members));
    if (points.length < 2) {
      fill(td, h('span', { className: 'note' }, `one hourly point so far (${fmtInt(values[0])})`));
      return;
    }
    const label = `${id} size over the last 7 days: ${fmtInt(values[0])} members at ${fmtTime(points[0].hour)}, ${fmtInt(values.at(-1))} at ${fmtTime(points.at(-1).hour)}; lowest ${fmtInt(Math.min(...values))}, highest ${fmtInt(Math.max(...values))} (${points.length} hourly points)`;
    td.replaceChildren();
    const chart = sparkline(td, { ...hourlySeries(points, (p) => num(p.members)), ariaLabel: label });
    ctx.onCleanup(() => chart.destroy());
  });
}

/** How a pair's overlap is resolved: by an override or exclusion, flagged unresolved by the audit, or by priority. */
function resolution(a, b, byId, unresolved, capped = false) {
  const sa = byId.get(a);
  const sb = byId.get(b);
  if (sa?.overrides?.includes(b)) return { kind: 'override', text: `resolved: ${a} overrides ${b}` };
  if (sb?.overrides?.includes(a)) return { kind: 'override', text: `resolved: ${b} overrides ${a}` };
  if (sa?.exclusions?.includes(b)) return { kind: 'exclusion', text: `resolved: ${a} excludes members of ${b}` };
  if (sb?.exclusions?.includes(a)) return { kind: 'exclusion', text: `resolved: ${b} excludes members of ${a}` };
  if (unresolved.has(`${a}|${b}`) || unresolved.has(`${b}|${a}`)) return { kind: 'unresolved', text: 'unresolved: same family and priority, no override or exclusion (only declaration order decides)' };
  // Past the audit's first 1,000 unresolved pairs the rest are counted, not listed: an unlisted pair may be either.
  // Only two non-fallback segments of the same priority can be unresolved.
  if (capped && sa && sb && !sa.fallback && !sb.fallback && sa.segment?.priority === sb.segment?.priority) return { kind: 'unlisted', text: 'resolved by priority, or unresolved past the first 1,000 pairs the audit lists' };
  return { kind: 'priority', text: 'resolved by priority: the higher-priority segment wins' };
}

const MARKS = { override: '✓', exclusion: '✓', unresolved: '⚠', priority: '', unlisted: '?' };

function renderOverlap(body, audit, cat) {
  const ids = (audit.segments ?? []).map((s) => s.segment?.id);
  const byId = new Map((cat?.segments ?? []).map((s) => [s.segment?.id, s]));
  const counts = new Map();
  for (const o of audit.overlaps ?? []) {
    counts.set(`${o.segmentA}|${o.segmentB}`, num(o.count));
    counts.set(`${o.segmentB}|${o.segmentA}`, num(o.count));
  }
  const unresolved = new Set((audit.warnings ?? []).filter((w) => w.code === 'overlap_unresolved' && w.otherSegment).map((w) => `${w.segment}|${w.otherSegment}`));
  const capped = (audit.warnings ?? []).some((w) => w.code === 'overlap_unresolved' && !w.otherSegment); // "N more pairs ... not listed"
  const max = Math.max(0, ...counts.values());
  if (!ids.length) {
    fill(body, h('p', {}, 'The catalog has no segments.'));
    return;
  }
  const header = h('tr', {}, h('td', {}), ids.map((id, i) => h('th', { scope: 'col', title: id }, h('span', { 'aria-hidden': 'true' }, String(i + 1)), h('span', { className: 'sr-only' }, id))));
  const rows = ids.map((a, i) => h('tr', {}, h('th', { scope: 'row' }, `${i + 1}. ${a}`), ids.map((b) => {
    if (a === b) {
      return h('td', { className: 'self', title: `${a}: same segment` }, h('span', { className: 'sr-only' }, 'same segment'));
    }
    const n = counts.get(`${a}|${b}`) ?? 0;
    if (!n) {
      return h('td', { className: 'zero', 'data-testid': `overlap-${a}-${b}`, 'data-value': '0', title: `${a} and ${b}: no members in common` }, h('span', { 'aria-hidden': 'true' }, '·'), h('span', { className: 'sr-only' }, 'none'));
    }
    const r = resolution(a, b, byId, unresolved, capped);
    const colour = viridis(Math.sqrt(n / max));
    return h('td', {
      'data-testid': `overlap-${a}-${b}`, 'data-value': n, 'data-resolution': r.kind,
      style: { background: colour.background, color: colour.color },
      title: `${a} and ${b}: ${fmtInt(n)} members in common; ${r.text}`,
    }, fmtInt(n), MARKS[r.kind] ? h('span', { className: 'mark', 'aria-hidden': 'true' }, ` ${MARKS[r.kind]}`) : null, h('span', { className: 'sr-only' }, `, ${r.text}`));
  })));
  const nUnresolved = (audit.overlaps ?? []).filter((o) => resolution(o.segmentA, o.segmentB, byId, unresolved).kind === 'unresolved').length;
  const listedNote = `${capped ? ' (the audit lists the first 1,000 unresolved pairs; the rest are marked ?)' : ''}${(audit.overlaps ?? []).length >= 20000 ? '; the audit lists the 20,000 largest overlaps, a pair beyond them shows as none' : ''}`;
  fill(body,
    h('div', { className: 'heat-legend', 'aria-label': 'Legend of the overlap matrix', role: 'group' },
      h('span', {}, 'Colour: members in common, square-root scale from 1 ', h('span', { className: 'heat-scale', 'aria-hidden': 'true' }), ` ${fmtInt(max)}`),
      h('span', {}, h('span', { className: 'mark' }, '✓'), ' resolved by an override or exclusion'),
      h('span', {}, h('span', { className: 'mark' }, '⚠'), ' unresolved (audit warning overlap_unresolved)'),
      h('span', {}, 'no mark: resolved by priority (higher wins)'),
      capped ? h('span', {}, h('span', { className: 'mark' }, '?'), ' not listed: by priority, or unresolved past the audit\'s first 1,000') : null,
      h('span', {}, h('span', { className: 'mark' }, '·'), ' no members in common')),
    h('p', { 'data-testid': 'overlap-summary' }, `${(audit.overlaps ?? []).length} overlapping pairs, ${nUnresolved} unresolved${listedNote}; ${fmtInt(audit.population)} profiles evaluated (catalog version ${audit.catalogVersion ?? '0'}).`),
    h('div', { className: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': 'Overlap matrix (scrollable)' },
      h('table', { className: 'heatmap', 'data-testid': 'overlap-matrix' },
        h('caption', { className: 'sr-only' }, 'Members in common per pair of segments; rows and columns in priority order'),
        h('thead', {}, header), h('tbody', {}, rows))));
}

function renderWarnings(body, audit) {
  const list = audit.warnings ?? [];
  if (!list.length) {
    fill(body, h('p', { 'data-testid': 'warnings-total', 'data-value': '0' }, 'No warnings.'));
    return;
  }
  fill(body,
    h('p', { 'data-testid': 'warnings-total', 'data-value': list.length }, `${list.length} warning${list.length === 1 ? '' : 's'}.`),
    h('div', { className: 'table-wrap' }, h('table', { className: 'data', 'data-testid': 'warnings-table' },
      h('caption', { className: 'sr-only' }, 'Audit warnings'),
      h('thead', {}, h('tr', {}, ['Code', 'Segment', 'Other segment', 'Message', 'Where'].map((l) => h('th', { scope: 'col' }, l)))),
      h('tbody', {}, list.map((w, i) => h('tr', { 'data-testid': `warning-${i}`, 'data-code': w.code },
        h('th', { scope: 'row' }, h('code', {}, w.code)),
        h('td', {}, w.segment ? h('a', { href: `#/segments/${encodeURIComponent(w.segment)}` }, w.segment) : '—'),
        h('td', {}, w.otherSegment || '—'),
        h('td', {}, w.message),
        h('td', { className: 'mono' }, w.file ? `${w.file}${w.line ? `:${w.line}` : ''}${w.column ? `:${w.column}` : ''}` : '—')))))));
}

function renderDetails(body, cat) {
  const lead = cat.leadScoring ?? {};
  fill(body,
    h('details', {}, h('summary', {}, `Personas (${(cat.personas ?? []).length})`),
      h('ul', {}, (cat.personas ?? []).map((p) => h('li', {}, h('strong', {}, p.name || p.id), ` (${p.id})`, p.role ? ` — ${p.role}` : '', p.messaging ? h('div', { className: 'note' }, p.messaging) : null)))),
    h('details', {}, h('summary', {}, 'Lead scoring'),
      h('p', {}, `Grades: warm from ${lead.warmFrom ?? 0}, hot from ${lead.hotFrom ?? 0}, sales ready from ${lead.salesReadyFrom ?? 0}.`),
      h('div', { className: 'table-wrap' }, h('table', { className: 'data' }, h('caption', {}, 'Signals'),
        h('thead', {}, h('tr', {}, ['Signal', 'Category', 'What counts', 'Points', 'Cap'].map((l, i) => h('th', { scope: 'col', className: i > 2 ? 'num' : '' }, l)))),
        h('tbody', {}, (lead.signals ?? []).map((s) => h('tr', {}, h('th', { scope: 'row' }, s.name), h('td', {}, s.category), h('td', {}, s.description),
          h('td', { className: 'num' }, String(s.points ?? 0)), h('td', { className: 'num' }, String(s.cap ?? 0)))))))),
    h('details', {}, h('summary', {}, `Traits (${(cat.traits ?? []).length})`),
      h('div', { className: 'table-wrap' }, h('table', { className: 'data' }, h('caption', { className: 'sr-only' }, 'Traits'),
        h('thead', {}, h('tr', {}, ['Trait', 'Type', 'Layer', 'Personal data', 'Meaning'].map((l) => h('th', { scope: 'col' }, l)))),
        h('tbody', {}, (cat.traits ?? []).map((t) => h('tr', {}, h('th', { scope: 'row' }, h('code', {}, `traits.${t.name}`)), h('td', {}, t.type),
          h('td', {}, enumLabel(t.layer, 'DATA_LAYER_')), h('td', {}, t.pii ? 'yes' : 'no'), h('td', {}, t.description ?? ''))))))),
    h('details', {}, h('summary', {}, `Version history (${(cat.history ?? []).length} kept)`),
      h('div', { className: 'table-wrap' }, h('table', { className: 'data' }, h('caption', { className: 'sr-only' }, 'Catalog versions, newest first'),
        h('thead', {}, h('tr', {}, ['Version', 'Published', 'Origin', 'Comment'].map((l) => h('th', { scope: 'col' }, l)))),
        h('tbody', {}, (cat.history ?? []).map((v) => h('tr', {}, h('th', { scope: 'row' }, String(v.version ?? 0)), h('td', {}, fmtTime(v.publishedAt)), h('td', {}, v.origin ?? ''), h('td', {}, v.comment ?? ''))))))));
}
