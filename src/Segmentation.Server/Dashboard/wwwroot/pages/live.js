// Live: the change stream (users entering and leaving segments, newest first) and the decision rate.
// Routes: GET /v1/segment-changes (newline-delimited JSON stream), GET /metrics (Prometheus text, the
// segmentation.decisions counter), GET /v1/kpis (decisions of the current and previous hour).

import { call, stream, readCounter, describeError } from '../api.js';
import { lineChart } from '../charts.js';
import { h, fill, num, fmtInt, fmtDec, fmtTime, section } from '../util.js';

const MAX_ROWS = 200;
const POLL_MS = 5000;
const RATE_SAMPLES = 60; // 5 minutes
const KPI_MS = 60000;
const OUT_OF_RANGE = 11; // google.rpc.Code
// OpenTelemetry's Prometheus exporter names the counter "segmentation.decisions" (unit {decision}) this way;
// the second name is tried for exporters that add no _total suffix.
const COUNTER_NAMES = ['segmentation_decisions_total', 'segmentation_decisions'];

const KINDS = {
  MEMBERSHIP_CHANGE_KIND_ENTERED: '▲ entered',
  MEMBERSHIP_CHANGE_KIND_LEFT: '▼ left',
  MEMBERSHIP_CHANGE_KIND_TRIGGERED: '⏰ trigger',
};

export async function render(ctx) {
  ctx.setTitle('Live');
  const rate = section('Decision rate', 'rate', h('p', { className: 'help' },
    `Served decisions per second, from the difference of the segmentation_decisions_total counter at /metrics between polls every ${POLL_MS / 1000} s (the service counts decisions when it drains them into the KPIs, so the rate trails by a few seconds).`));
  const changes = section('Segment changes', 'changes', h('p', { className: 'help' },
    `Users entering and leaving segments as they happen (or, on request, from the oldest retained entry); newest first, the last ${MAX_ROWS} shown. Needs a key with the watch (or admin) scope.`));
  ctx.main.append(h('h1', { tabindex: '-1' }, 'Live'), rate.el, changes.el);
  startRate(ctx, rate.body);
  startChanges(ctx, changes.body);
}

function startRate(ctx, body) {
  const rateText = h('span', { className: 'value', 'data-testid': 'decision-rate' }, '…');
  const counterText = h('span', { className: 'value', 'data-testid': 'decisions-counter' }, '…');
  const hourText = h('span', { className: 'value', 'data-testid': 'decisions-last-hour' }, '…');
  const hourNote = h('span', { className: 'note', style: { display: 'block' } }, 'GetKpis total.decisions');
  const note = h('p', { className: 'note', 'data-testid': 'decision-rate-note' }, 'Waiting for the second sample…');
  const chartBox = h('div');
  fill(body, h('ul', { className: 'kpis' },
    h('li', {}, h('span', { className: 'label' }, 'Decisions per second'), rateText),
    h('li', {}, h('span', { className: 'label' }, 'Decisions counted since start'), counterText),
    h('li', {}, h('span', { className: 'label' }, 'Decisions, current and previous hour'), hourText, hourNote)), note, chartBox);

  const xs = [];
  const ys = [];
  let chart = null;
  let prev = null;
  let polling = false;
  const poll = async () => {
    // One sample at a time, and none while the tab is hidden: a slow answer overtaken by the next poll would otherwise
    // land after it and make the next rate out of order.
    if (polling || document.hidden) {
      return;
    }
    polling = true;
    try {
      let value = null;
      for (const name of COUNTER_NAMES) {
        value = await readCounter(name, { signal: ctx.signal });
        if (value !== null) {
          break;
        }
      }
      const t = Date.now() / 1000;
      if (value === null) {
        note.textContent = 'No decisions counted yet (the counter appears at /metrics after the first decision).';
        value = 0;
      }
      counterText.textContent = fmtInt(value);
      counterText.dataset.value = String(value);
      if (prev && value >= prev.value) {
        const perSecond = (value - prev.value) / (t - prev.t);
        rateText.textContent = fmtDec(perSecond, 2);
        rateText.dataset.value = String(perSecond);
        note.textContent = `Last sample ${new Date(t * 1000).toLocaleTimeString('en-GB', { timeZone: 'UTC' })} UTC: ${fmtInt(value - prev.value)} decisions in ${fmtDec(t - prev.t, 1)} s.`;
        xs.push(t);
        ys.push(perSecond);
        if (xs.length > RATE_SAMPLES) {
          xs.shift();
          ys.shift();
        }
        if (!chart) {
          chart = lineChart(chartBox, { xs, series: [{ label: 'Decisions per second', values: ys }], ariaLabel: `Decisions per second over the last ${RATE_SAMPLES * POLL_MS / 60000} minutes, sampled every ${POLL_MS / 1000} s; the current value is shown above`, format: (v) => fmtDec(v, 2), height: 180, xWindow: RATE_SAMPLES * POLL_MS / 1000, xLabel: 'Time (UTC)' });
          ctx.onCleanup(() => chart.destroy());
        } else {
          chart.setData(xs, [ys]);
        }
      }
      prev = { value, t };
    } catch (err) {
      if (!ctx.signal.aborted) {
        rateText.textContent = 'n/a';
        note.textContent = `The decision counter is not available: ${describeError(err)}`;
      }
    } finally {
      polling = false;
    }
  };
  const hour = async () => {
    try {
      const res = await call('/v1/kpis', { query: { start: new Date(Date.now() - 3600e3).toISOString(), end: new Date().toISOString() }, signal: ctx.signal });
      hourText.textContent = fmtInt(res.total?.decisions);
      hourText.dataset.value = String(num(res.total?.decisions));
      hourNote.textContent = `${fmtTime(res.start)} to ${fmtTime(res.end)} (GetKpis)`;
    } catch (err) {
      ctx.fail(err, 'Decisions of the last hour (GET /v1/kpis)');
      hourText.textContent = 'n/a';
    }
  };
  poll();
  hour();
  const pollTimer = setInterval(poll, POLL_MS);
  const hourTimer = setInterval(hour, KPI_MS);
  ctx.onCleanup(() => {
    clearInterval(pollTimer);
    clearInterval(hourTimer);
  });
}

function startChanges(ctx, body) {
  const status = h('span', { 'data-testid': 'stream-status' }, 'connecting…');
  const counts = { received: 0, entered: 0, left: 0 };
  const countText = h('span', { 'data-testid': 'changes-count', 'data-value': '0' }, '0');
  const countDetail = h('span', {});
  const toggle = h('button', { type: 'button', 'data-testid': 'stream-toggle' }, 'Pause');
  const replayButton = h('button', { type: 'button', 'data-testid': 'stream-replay' }, 'Replay from the oldest retained entry');
  const tbody = h('tbody', {});
  fill(body,
    h('div', { className: 'row' }, toggle, replayButton, h('p', { role: 'status' }, 'Stream: ', status)),
    h('p', {}, 'Entries received: ', countText, countDetail),
    h('div', { className: 'table-wrap scroll', tabindex: '0', role: 'region', 'aria-label': 'Segment changes (scrollable)' }, h('table', { className: 'data', 'data-testid': 'changes-table' },
      h('caption', {}, `Newest first, at most ${MAX_ROWS} rows`),
      h('thead', {}, h('tr', {}, ['Offset', 'When', 'User', 'Segment', 'Change', 'Cause', 'Catalog version'].map((l, i) => h('th', { scope: 'col', className: i === 0 || i === 6 ? 'num' : '' }, l)))),
      tbody)));

  let pending = []; // oldest first, since the last paint
  let paintTimer = null;
  let lastOffset = null;
  let lastStream = null;
  let controller = null;
  let running = false;
  let replay = false;
  let startAgain = false; // the stream was lost (its offset gone): a reconnect starts the page again

  const row = (c) => h('tr', { 'data-testid': `change-${c.offset ?? 0}` },
    h('th', { scope: 'row', className: 'num' }, String(c.offset ?? 0)),
    h('td', {}, fmtTime(c.changedAt)),
    h('td', {}, h('a', { href: `#/inspect?user=${encodeURIComponent(c.userId ?? '')}` }, c.userId ?? '')),
    h('td', {}, h('a', { href: `#/segments/${encodeURIComponent(c.segmentId ?? '')}` }, c.segmentId ?? '')),
    h('td', { 'data-kind': c.kind ?? '' }, KINDS[c.kind] ?? c.kind ?? '—', c.triggerId ? ` ${c.triggerId}` : ''),
    h('td', { className: 'mono' }, c.cause ?? ''),
    h('td', { className: 'num' }, String(c.catalogVersion ?? 0)));
  const paint = () => {
    paintTimer = null;
    // New rows go on top and the oldest beyond MAX_ROWS come off the bottom; the rows in between stay the same
    // elements, so a link that has focus, or is being clicked, is not replaced under the user.
    tbody.prepend(...pending.slice(-MAX_ROWS).reverse().map(row));
    pending = [];
    while (tbody.rows.length > MAX_ROWS) {
      tbody.lastElementChild.remove();
    }
    showCounts();
  };
  const showCounts = () => {
    countText.textContent = fmtInt(counts.received);
    countText.dataset.value = String(counts.received);
    countDetail.textContent = ` (${fmtInt(counts.entered)} entered, ${fmtInt(counts.left)} left)`;
  };

  const onMessage = (c) => {
    counts.received++;
    if (c.kind === 'MEMBERSHIP_CHANGE_KIND_ENTERED') counts.entered++;
    if (c.kind === 'MEMBERSHIP_CHANGE_KIND_LEFT') counts.left++;
    lastOffset = c.offset ?? lastOffset;
    lastStream = c.streamId || lastStream;
    pending.push(c);
    if (pending.length > 4 * MAX_ROWS) {
      pending = pending.slice(-MAX_ROWS);
    }
    paintTimer ??= setTimeout(paint, 250);
  };

  const connect = async () => {
    const mine = new AbortController();
    controller = mine;
    running = true;
    toggle.textContent = 'Pause';
    status.textContent = 'connecting…';
    // Live from now; the retained history only when asked for (it can be long), then resumed after the last offset seen.
    // A resume names the stream its offset is from: after a reset (another data directory, a restart without one) the
    // same offsets are another stream's entries, refused as OUT_OF_RANGE instead of mixed in.
    const query = lastOffset !== null ? { afterOffset: lastOffset, streamId: lastStream ?? undefined } : replay ? { fromOldest: true } : {};
    try {
      await stream('/v1/segment-changes', { query, signal: mine.signal, onMessage, onOpen: () => { status.textContent = 'connected, receiving'; } });
      status.textContent = 'ended by the service';
    } catch (err) {
      if (ctx.signal.aborted) {
        return;
      }
      if (controller !== mine) {
        return; // replaced by a newer connection (a replay)
      }
      if (mine.signal.aborted) {
        status.textContent = `paused after offset ${lastOffset ?? '—'}`;
      } else if (err?.code === OUT_OF_RANGE && lastOffset !== null) {
        // The offset is gone (past retention) or from a stream since reset: resuming it can never succeed. Start again
        // from the live stream; what happened in between is not shown.
        status.textContent = `the stream no longer holds offset ${lastOffset} (past its retention, or reset): reconnect to follow it from now`;
        lastOffset = null;
        lastStream = null;
        replay = false; // "from now", as said: not the whole retained history again
        startAgain = true; // the rows and counts so far are the old stream's: the reconnect clears them
      } else {
        status.textContent = `stopped: ${describeError(err)}`;
        ctx.fail(err, 'Change stream (GET /v1/segment-changes)');
      }
    } finally {
      if (!ctx.signal.aborted && controller === mine) {
        running = false;
        replayButton.disabled = false; // a replay that ended (or failed) may be asked for again
        toggle.textContent = lastOffset === null ? 'Reconnect' : 'Resume';
      }
    }
  };

  // Empties the table and the counts: what follows is not the continuation of what is shown.
  const clearShown = () => {
    tbody.replaceChildren();
    pending = [];
    Object.assign(counts, { received: 0, entered: 0, left: 0 });
    showCounts(); // at once: the old stream's count beside an empty table read as rows missing
  };
  toggle.addEventListener('click', () => {
    if (running) {
      controller.abort();
    } else {
      if (startAgain) {
        startAgain = false;
        clearShown();
      }
      connect();
    }
  });
  replayButton.addEventListener('click', () => {
    replay = true;
    startAgain = false;
    lastOffset = null;
    lastStream = null;
    clearShown();
    replayButton.disabled = true;
    controller?.abort();
    setTimeout(connect, 0);
  });
  ctx.onCleanup(() => {
    controller?.abort();
    clearTimeout(paintTimer);
  });
  connect();
}
