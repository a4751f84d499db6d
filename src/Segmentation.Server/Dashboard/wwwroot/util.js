// DOM building, number formatting and a sortable table: shared by the pages.

/**
 * Creates an element. attrs: properties such as className, or attributes (names with a dash, aria-*, data-*,
 * role, for, scope...); `on: {click: fn}` adds listeners. Children: nodes, strings, numbers, arrays, null.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) {
      continue;
    }
    if (name === 'on') {
      for (const [event, fn] of Object.entries(value)) {
        el.addEventListener(event, fn);
      }
    } else if (name === 'style' && typeof value === 'object') {
      Object.assign(el.style, value); // CSSOM, allowed under a strict Content-Security-Policy
    } else if (name === 'className' || name === 'textContent' || name === 'value' || name === 'checked' || name === 'open') {
      el[name] = value;
    } else {
      el.setAttribute(name, value === true ? '' : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) {
      continue;
    }
    if (Array.isArray(child)) {
      append(el, child);
    } else {
      el.append(child instanceof Node ? child : String(child));
    }
  }
}

/** Replaces an element's content. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A proto3 JSON number (int64 as string, omitted when zero) as a Number. */
export const num = (v) => (v === undefined || v === null || v === '' ? 0 : Number(v));

const GB = 'en-GB';

/** An integer count: 12,345. */
export const fmtInt = (v) => num(v).toLocaleString(GB, { maximumFractionDigits: 0 });

/** A decimal with fixed digits: 1,234.56. */
export const fmtDec = (v, digits = 2) => num(v).toLocaleString(GB, { minimumFractionDigits: digits, maximumFractionDigits: digits });

/** A share (0-1) as a percentage with fixed digits: 0.1234 -> 12.34 %. */
/** A share as a percentage with as many decimals as it has, up to `digits` (0.025 → "2.5 %", 0.03 → "3 %"). */
export const fmtPctUpTo = (v, digits = 2) => `${(num(v) * 100).toLocaleString(GB, { maximumFractionDigits: digits })} %`;
export const fmtPct = (v, digits = 2) => `${(num(v) * 100).toLocaleString(GB, { minimumFractionDigits: digits, maximumFractionDigits: digits })} %`;

/** A relative change (0.05) as a signed percentage: +5.00 %. */
export const fmtLift = (v, digits = 2) => {
  const n = num(v);
  return `${n > 0 ? '+' : n < 0 ? '−' : '±'}${Math.abs(n * 100).toLocaleString(GB, { minimumFractionDigits: digits, maximumFractionDigits: digits })} %`;
};

/** An RFC 3339 timestamp as a readable UTC time, or a dash when unset. */
export function fmtTime(ts) {
  if (!ts) {
    return '—';
  }
  const d = new Date(ts);
  return Number.isNaN(d.getTime()) ? ts : `${d.toLocaleString(GB, { timeZone: 'UTC', dateStyle: 'medium', timeStyle: 'medium' })} UTC`;
}

/** A protobuf Duration ("93784.5s") in seconds. */
export const durationSeconds = (d) => (d ? Number(String(d).replace(/s$/, '')) : null);

/** A protobuf Duration as days/hours/minutes/seconds, for example "1 d 2 h 3 min". */
export function fmtDuration(d) {
  let s = durationSeconds(d);
  if (s === null || Number.isNaN(s)) {
    return '—';
  }
  if (s < 60) {
    return `${s.toLocaleString(GB, { maximumFractionDigits: 1 })} s`;
  }
  const parts = [];
  for (const [unit, size] of [['d', 86400], ['h', 3600], ['min', 60]]) {
    if (s >= size) {
      parts.push(`${Math.floor(s / size)} ${unit}`);
      s %= size;
    }
  }
  return parts.slice(0, 2).join(' ');
}

/** An enum name without its prefix, in lower case: SEGMENT_TYPE_VALUE -> "value". */
export const enumLabel = (value, prefix) => (value ? String(value).replace(prefix, '').toLowerCase().replace(/_/g, ' ') : 'unspecified');

/** The query of the location hash (#/page?x=1). */
export function hashQuery() {
  const i = location.hash.indexOf('?');
  return new URLSearchParams(i >= 0 ? location.hash.slice(i + 1) : '');
}

/** A section with a heading (h2) and a body element the caller fills. */
export function section(title, id, ...intro) {
  const body = h('div', { className: 'section-body' }, h('p', { className: 'loading' }, 'Loading…'));
  const el = h('section', { 'aria-labelledby': `${id}-title`, className: 'card' }, h('h2', { id: `${id}-title` }, title), intro, body);
  return { el, body };
}

/** An inline "could not load" note inside a section (the alert region carries the message). */
export const unavailable = (text) => h('p', { className: 'unavailable' }, `Not available: ${text}`);

/**
 * A table sorted by clicking its column headers (buttons; the header carries aria-sort). `name` makes the test
 * ids: the table is "{name}-table", the header buttons "sort-{name}-{column key}".
 * columns: [{key, label, value: row => sortable, render: row => cell content, testid?: row => string, numeric?}]
 * rowAttrs: row => attributes of the <tr>. The first column is a row header (<th scope="row">).
 */
export function sortableTable({ name, caption, columns, rows, rowAttrs = () => ({}), sortKey = null, descending = true, className = '' }) {
  let key = sortKey;
  let desc = descending;
  const thead = h('thead');
  const tbody = h('tbody');
  const table = h('table', { className: `data ${className}`, 'data-testid': `${name}-table` }, h('caption', {}, caption), thead, tbody);

  const draw = () => {
    const headerRow = h('tr');
    for (const col of columns) {
      const sorted = key === col.key;
      const sort = sorted ? (desc ? 'descending' : 'ascending') : 'none';
      headerRow.append(h('th', { scope: 'col', 'aria-sort': sort, className: col.numeric ? 'num' : '' },
        h('button', {
          type: 'button',
          className: 'sort',
          'data-testid': `sort-${name}-${col.key}`,
          on: {
            click: () => {
              desc = key === col.key ? !desc : !!col.numeric;
              key = col.key;
              draw();
              table.querySelector(`[data-testid="sort-${name}-${col.key}"]`)?.focus();
            },
          },
        }, col.label, h('span', { className: 'sort-mark', 'aria-hidden': 'true' }, sorted ? (desc ? ' ▼' : ' ▲') : ' ↕'))));
    }
    fill(thead, headerRow);
    const sortedRows = [...rows];
    if (key) {
      const col = columns.find((c) => c.key === key);
      sortedRows.sort((a, b) => {
        const x = col.value(a);
        const y = col.value(b);
        const c = typeof x === 'number' && typeof y === 'number' ? x - y : String(x).localeCompare(String(y));
        return desc ? -c : c;
      });
    }
    fill(tbody, sortedRows.map((row) => h('tr', rowAttrs(row), columns.map((col, i) => h(i === 0 ? 'th' : 'td', {
      scope: i === 0 ? 'row' : undefined,
      className: col.numeric ? 'num' : '',
      'data-testid': col.testid?.(row),
      'data-value': col.testid ? col.value(row) : undefined,
    }, col.render ? col.render(row) : String(col.value(row)))))));
  };
  draw();
  return table;
}
