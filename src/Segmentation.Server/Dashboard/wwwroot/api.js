// The service's HTTP/JSON API (gRPC JSON transcoding), same origin. Every call sends the API key kept in
// sessionStorage as `x-api-key`; errors become ApiError with the google.rpc.Status the service returns.

const KEY_ITEM = 'segmentation.dashboard.apiKey';

/** The API key of this browser tab: null until the user signs in ("" is a valid, empty key). */
export const apiKey = {
  get: () => sessionStorage.getItem(KEY_ITEM),
  set: (key) => sessionStorage.setItem(KEY_ITEM, key),
  clear: () => sessionStorage.removeItem(KEY_ITEM),
  isSet: () => sessionStorage.getItem(KEY_ITEM) !== null,
};

/** gRPC status code names, for messages. */
const CODE_NAMES = ['OK', 'CANCELLED', 'UNKNOWN', 'INVALID_ARGUMENT', 'DEADLINE_EXCEEDED', 'NOT_FOUND', 'ALREADY_EXISTS',
  'PERMISSION_DENIED', 'RESOURCE_EXHAUSTED', 'FAILED_PRECONDITION', 'ABORTED', 'OUT_OF_RANGE', 'UNIMPLEMENTED', 'INTERNAL',
  'UNAVAILABLE', 'DATA_LOSS', 'UNAUTHENTICATED'];

/** A failed call: HTTP status and the service's {code, message, details}. */
export class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.details = details ?? [];
  }

  get codeName() {
    // Code 0 (OK) never names an error: an answer that was not the service's JSON (a proxy's page) has none.
    return (this.code > 0 && CODE_NAMES[this.code]) || `HTTP ${this.status}`;
  }
}

/** A human sentence for any error a call can throw. */
export function describeError(err, what = '') {
  const prefix = what ? `${what}: ` : '';
  if (err instanceof ApiError) {
    if (err.status === 401) {
      return `${prefix}the API key is missing or not accepted — please sign in again (${err.message}).`;
    }
    if (err.status === 403 && /TLS only/.test(err.message)) {
      return `${prefix}this server refuses API calls over plain HTTP — open the dashboard with https:// (${err.message}).`;
    }
    if (err.status === 403) {
      const scope = /'([a-z_]+)' scope/.exec(err.message)?.[1];
      return `${prefix}this key lacks the ${scope ? `'${scope}'` : 'required'} scope (${err.message}).`;
    }
    if (err.status === 429) {
      return `${prefix}rate limited, try again shortly (${err.message}).`;
    }
    return `${prefix}${err.codeName}: ${err.message}`;
  }
  if (err?.name === 'AbortError') {
    return `${prefix}cancelled.`;
  }
  return `${prefix}could not reach the service (${err?.message ?? err}).`;
}

function url(path, query) {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query ?? {})) {
    for (const v of Array.isArray(value) ? value : [value]) {
      if (v !== undefined && v !== null && v !== '') {
        params.append(name, String(v));
      }
    }
  }
  const qs = params.toString();
  return qs ? `${path}?${qs}` : path;
}

// Over plain HTTP the key would cross the network in clear, and a server that refuses API calls without TLS would
// refuse it only after reading it. So before the first key is sent over http:, one call without a key asks: a server
// that serves the API without TLS answers 401 (no key), one that does not answers 403 "TLS only", and the key is then
// never sent.
let plaintextVerdict = null;

async function keyMayBeSent() {
  if (location.protocol !== 'http:' || !apiKey.get()) {
    return;
  }
  // Only a 401 (or a success) shows the API is served here without TLS; any other answer (a proxy's 502, a rate
  // limit) shows nothing: the call fails with it, the key unsent, and the next call asks again.
  plaintextVerdict ??= fetch('/v1/segments', { headers: { accept: 'application/json' }, cache: 'no-store' })
    .then(async (response) => (response.status === 401 || response.ok ? null : errorOf(response)))
    .catch((err) => err); // unreachable: reported as such, and asked again
  const refusal = await plaintextVerdict;
  if (refusal) {
    if (!(refusal instanceof ApiError && /TLS only/.test(refusal.message))) {
      plaintextVerdict = null;
    }
    throw refusal;
  }
}

async function headers(hasBody) {
  await keyMayBeSent();
  const h = { accept: 'application/json' };
  const key = apiKey.get();
  if (key) {
    h['x-api-key'] = key;
  }
  if (hasBody) {
    h['content-type'] = 'application/json';
  }
  return h;
}

async function errorOf(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    // not JSON: a proxy or the static file host answered
  }
  const err = new ApiError(response.status, body?.code ?? 0, body?.message || response.statusText || `HTTP ${response.status}`, body?.details);
  if (response.status === 401) {
    window.dispatchEvent(new CustomEvent('api:unauthenticated', { detail: err }));
  }
  return err;
}

/** Calls a unary route; resolves to the parsed JSON response. */
export async function call(path, { method = 'GET', query, body, signal } = {}) {
  const response = await fetch(url(path, query), {
    method,
    headers: await headers(body !== undefined),
    body: body === undefined ? undefined : JSON.stringify(body),
    signal,
    cache: 'no-store',
  });
  if (!response.ok) {
    throw await errorOf(response);
  }
  const text = await response.text();
  return text ? JSON.parse(text) : {};
}

/**
 * Reads a server-streaming route: newline-delimited JSON, one message per line, until the server ends it or
 * `signal` aborts; onOpen runs once the response headers arrived. A status object ({code, message}) arriving in the stream is thrown as ApiError.
 */
export async function stream(path, { query, signal, onMessage, onOpen = () => {} }) {
  const response = await fetch(url(path, query), { headers: await headers(false), signal, cache: 'no-store' });
  if (!response.ok) {
    throw await errorOf(response);
  }
  onOpen();
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  const handle = (line) => {
    const text = line.trim();
    if (!text) {
      return;
    }
    const message = JSON.parse(text);
    if (typeof message.code === 'number' && typeof message.message === 'string' && !('userId' in message)) {
      throw new ApiError(response.status, message.code, message.message, message.details);
    }
    onMessage(message);
  };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) {
      break;
    }
    buffer += decoder.decode(value, { stream: true });
    let newline;
    while ((newline = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, newline);
      buffer = buffer.slice(newline + 1);
      handle(line);
    }
  }
  handle(buffer + decoder.decode());
}

/**
 * Reads the Prometheus text at /metrics (no key needed) and sums every sample of one metric across labels.
 * Resolves to null when the metric is absent.
 */
export async function readCounter(name, { signal } = {}) {
  const response = await fetch('/metrics', { signal, cache: 'no-store', headers: { accept: 'text/plain' } });
  if (!response.ok) {
    throw new ApiError(response.status, 0, `/metrics answered HTTP ${response.status}`);
  }
  const text = await response.text();
  let sum = null;
  for (const line of text.split('\n')) {
    if (line.startsWith(name) && (line[name.length] === '{' || line[name.length] === ' ')) {
      // name{labels} value [timestamp]; label values may hold spaces, so read after the closing brace
      const rest = line[name.length] === '{' ? line.slice(line.lastIndexOf('}') + 1) : line.slice(name.length);
      const value = Number(rest.trim().split(/\s+/)[0]);
      if (Number.isFinite(value)) {
        sum = (sum ?? 0) + value;
      }
    }
  }
  return sum;
}
