// The dashboard shell: sign-in with the API key, hash routing to one module per page, and the alert region.

import { apiKey, describeError } from './api.js';
import { h, fill, hashQuery } from './util.js';

const ROUTES = [
  { pattern: /^\/?$/, nav: 'segments', load: () => import('./pages/segments.js') },
  { pattern: /^\/segments\/?$/, nav: 'segments', load: () => import('./pages/segments.js') },
  { pattern: /^\/segments\/([^/]+)$/, nav: 'segments', load: () => import('./pages/segment-detail.js') },
  { pattern: /^\/performance$/, nav: 'performance', load: () => import('./pages/performance.js') },
  { pattern: /^\/experiments\/?$/, nav: 'experiments', load: () => import('./pages/experiments.js') },
  { pattern: /^\/experiments\/([^/]+)$/, nav: 'experiments', load: () => import('./pages/experiment-detail.js') },
  { pattern: /^\/quality$/, nav: 'quality', load: () => import('./pages/quality.js') },
  { pattern: /^\/live$/, nav: 'live', load: () => import('./pages/live.js') },
  { pattern: /^\/inspect$/, nav: 'inspect', load: () => import('./pages/inspector.js') },
];

const main = document.getElementById('main');
const alerts = document.getElementById('alerts');
const signOut = document.getElementById('sign-out');
const keyStatus = document.getElementById('key-status');
let current = null; // {controller, cleanups}
let firstRender = true;
let keepFocusOn = null; // see ctx.keepFocus

/** Shows a message in the alert region (once per distinct text). */
export function showAlert(text) {
  if ([...alerts.querySelectorAll('.alert-text')].some((p) => p.textContent === text)) {
    return;
  }
  const item = h('div', { className: 'alert-item' },
    h('p', { className: 'alert-text' }, text),
    h('button', { type: 'button', className: 'link-button', on: { click: () => item.remove() } }, 'Dismiss'));
  alerts.append(item);
}

function leavePage() {
  if (current) {
    current.controller.abort();
    for (const fn of current.cleanups) {
      try {
        fn();
      } catch (err) {
        console.error(err);
      }
    }
  }
  current = null;
  alerts.replaceChildren();
}

function updateChrome(navKey) {
  const signedIn = apiKey.isSet();
  signOut.hidden = !signedIn;
  keyStatus.textContent = signedIn ? (apiKey.get() ? 'Signed in: key kept for this tab only.' : 'Signed in without a key.') : 'Not signed in.';
  for (const link of document.querySelectorAll('#nav a')) {
    if (link.dataset.nav === navKey) {
      link.setAttribute('aria-current', 'page');
    } else {
      link.removeAttribute('aria-current');
    }
  }
}

function showSignIn(reason, isError = false) {
  leavePage();
  updateChrome(null);
  if (reason && isError) {
    showAlert(reason);
  }
  document.title = 'Sign in · Segmentation dashboard';
  const input = h('input', { id: 'api-key', name: 'api-key', type: 'password', autocomplete: 'off', value: '', 'data-testid': 'api-key', 'aria-describedby': 'api-key-help' });
  const form = h('form', {
    className: 'card signin', 'data-testid': 'signin-form', 'aria-labelledby': 'signin-title',
    on: {
      submit: (e) => {
        e.preventDefault();
        apiKey.set(input.value.trim());
        route();
      },
    },
  },
  h('h1', { id: 'signin-title', tabindex: '-1' }, 'Sign in'),
  reason && !isError ? h('p', { className: 'notice', role: 'status' }, reason) : null,
  h('label', { for: 'api-key' }, 'API key'),
  input,
  h('p', { id: 'api-key-help', className: 'help' }, 'Sent as the x-api-key header with every call; kept in this tab’s session storage only. Pages need the read scope; members and the live stream need watch; the inspector needs decide; promoting needs admin. Leave empty when the service runs without authentication.'),
  h('button', { type: 'submit', 'data-testid': 'signin-submit' }, 'Sign in'));
  fill(main, form);
  input.focus();
}

/**
 * Shows the page the address names. A page that changed what it shows (a promotion) renders itself again through
 * ctx.reload(notice): the notice is the page's to show, and it takes the focus instead of the heading.
 */
async function route(notice) {
  if (!apiKey.isSet()) {
    showSignIn();
    return;
  }
  let path;
  try {
    path = decodeURIComponent(location.hash.replace(/^#/, '').split('?')[0]);
  } catch {
    path = ''; // a malformed address (a stray %) is a page not found, not an error
  }
  const match = ROUTES.map((r) => ({ r, m: r.pattern.exec(path) })).find((x) => x.m);
  leavePage();
  updateChrome(match?.r.nav);
  const page = { controller: new AbortController(), cleanups: [] };
  current = page;
  if (!match) {
    fill(main, h('h1', { tabindex: '-1' }, 'Page not found'), h('p', {}, h('a', { href: '#/segments' }, 'Go to the segments')));
    return;
  }
  fill(main, h('p', { className: 'loading' }, 'Loading…'));
  const ctx = {
    main,
    params: match.m.slice(1),
    query: hashQuery(),
    signal: page.controller.signal,
    onCleanup: (fn) => page.cleanups.push(fn),
    /** Reports a failed call in the alert region (not when the page was left). */
    fail: (err, what) => {
      if (page.controller.signal.aborted || err?.status === 401) {
        return;
      }
      if (!err?.status) {
        console.error(err); // unexpected (not an answer of the API, which the alert reports in full)
      }
      showAlert(describeError(err, what));
    },
    setTitle: (title) => {
      document.title = `${title} · Segmentation dashboard`;
    },
    notice,
    // The control to give focus back to once the next page has rendered (a choice that changes the URL re-renders the
    // page, and focus would otherwise move to its heading at every arrow key in a radio group).
    keepFocus: (testId) => {
      keepFocusOn = testId;
    },
    reload: (text) => {
      if (current === page) {
        route(text);
      }
    },
  };
  let module = null;
  try {
    module = await match.r.load();
  } catch (err) {
    // The page's own script did not arrive (a deploy, a network blip): say so where "Loading…" was, with a retry.
    if (current === page) {
      // A reload, not another import: the browser may keep a failed module import's failure for the document.
      const retry = h('button', { type: 'button', 'data-testid': 'page-retry' }, 'Reload the dashboard');
      retry.addEventListener('click', () => location.reload());
      fill(main, h('h1', { tabindex: '-1' }, 'This page could not be loaded'), h('p', { className: 'unavailable', 'data-testid': 'page-load-failed' }, describeError(err)), retry);
      ctx.fail(err, 'This page failed to load');
    }
  }
  if (current !== page) {
    return; // another page was asked for meanwhile
  }
  if (module) {
    try {
      main.replaceChildren();
      await module.render(ctx);
    } catch (err) {
      ctx.fail(err, 'This page failed');
    }
  }
  const keep = keepFocusOn;
  keepFocusOn = null;
  if (current === page && !firstRender) {
    ((keep ? main.querySelector(`[data-testid="${keep}"]`) : null) ?? (notice ? main.querySelector('[data-notice]') : null) ?? main.querySelector('h1'))?.focus();
  }
  firstRender = false;
}

window.addEventListener('api:unauthenticated', (e) => {
  if (!apiKey.isSet() && main.querySelector('[data-testid="signin-form"]')) {
    return; // a parallel call of the page already asked for the key
  }
  apiKey.clear();
  showSignIn(describeError(e.detail), true);
});

signOut.addEventListener('click', () => {
  apiKey.clear();
  showSignIn('Signed out.');
});

// The skip link moves focus without touching the hash (the hash is the route).
document.querySelector('.skip-link')?.addEventListener('click', (e) => {
  e.preventDefault();
  main.focus();
});

window.addEventListener('hashchange', () => route());
route();
