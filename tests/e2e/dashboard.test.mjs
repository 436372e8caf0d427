#!/usr/bin/env node
// The dashboard in a real browser: Debian's chromium, driven by playwright-core (no browser
// download). Loads GET / from a running rolloutd, waits for the data, reads the API itself through
// the same base URL and checks that the page shows the API's numbers.
//
//   node tests/e2e/dashboard.test.mjs BASE_URL SCREENSHOT_PATH [TOKEN]
//
// TOKEN (a reader token) is needed when the daemon has access.public_dashboard = false; the test
// then also goes through the page's token field. Prints one TAP line per check and a closing
// "dashboard: N passed, N failed" line; exits 1 on any failure, 2 on bad usage.
// Environment: CHROMIUM (default /usr/bin/chromium), RESSORT (the Ressort whose row is checked;
// default the first of GET /v1/ressorts).
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const [, , baseArg, shotPath, tokenArg] = process.argv;
if (!baseArg || !shotPath) {
  console.error('usage: node tests/e2e/dashboard.test.mjs BASE_URL SCREENSHOT_PATH [TOKEN]');
  process.exit(2);
}
const BASE = new URL(baseArg.endsWith('/') ? baseArg : baseArg + '/');
const TOKEN = tokenArg || '';
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const PAGE_LIMIT = 40 * 1024;

const nf = new Intl.NumberFormat('de-DE');
const pf = new Intl.NumberFormat('de-DE', { minimumFractionDigits: 1, maximumFractionDigits: 1 });
const int = (n) => nf.format(n);
const pct = (r) => pf.format(r * 100) + '\u00a0%';

let n = 0;
let failed = 0;
function check(ok, name, detail) {
  n++;
  if (!ok) failed++;
  console.log(`${ok ? 'ok' : 'not ok'} ${n} - ${name}`);
  if (!ok && detail) for (const line of String(detail).split('\n')) console.log(`  # ${line}`);
  return ok;
}
function finish() {
  console.log(`1..${n}`);
  console.log(`dashboard: ${n - failed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

async function api(rel, withToken = true) {
  const headers = { Accept: 'application/json' };
  if (TOKEN && withToken) headers.Authorization = `Bearer ${TOKEN}`;
  const r = await fetch(new URL(rel, BASE), { headers });
  const body = await r.text();
  let json = null;
  try { json = JSON.parse(body); } catch { /* not JSON */ }
  return { status: r.status, json, body, type: r.headers.get('content-type') || '' };
}

// Reads the numbers the page shows (text, data-value, data-on-track) for one item:
// The card of an item uses done-ITEM, target-ITEM, ...; a table cell PREFIX-done, PREFIX-target, ...
async function shown(page, prefix, suffix = '') {
  return page.evaluate(([pre, suf]) => {
    const get = (name) => {
      const e = document.querySelector(`[data-testid="${pre}${name}${suf ? '-' + suf : ''}"]`);
      return e ? { text: e.textContent.trim(), value: e.getAttribute('data-value'), onTrack: e.getAttribute('data-on-track') } : null;
    };
    return { done: get('done'), target: get('target'), ratio: get('ratio'), ontrack: get('ontrack') };
  }, [prefix, suffix]);
}

// The checks that compare the page with the API, as [ok, name, detail]; run again after the
// page's next refresh when the data changed in between.
async function compare(page, progress, ressortCode, ressortProgress) {
  const out = [];
  const items = progress.items;
  const cards = await page.$$eval('article.card[data-item]', (as) => as.map((a) => ({ item: a.dataset.item, off: a.classList.contains('off') })));
  out.push([JSON.stringify(cards.map((c) => c.item)) === JSON.stringify(items.map((i) => i.item)),
    `one card per item of /v1/progress, in order (${items.map((i) => i.item).join(', ')})`, `page: ${cards.map((c) => c.item).join(', ')}`]);
  const cmp = (name, got, want) => out.push([got && got.text === want.text && (want.value === undefined || got.value === want.value),
    `${name}: ${want.text.replace('\u00a0', ' ')}`, `page shows ${JSON.stringify(got)}, API says ${JSON.stringify(want)}`]);
  const cmpTrack = (name, got, want, card) => {
    const textOk = got && (want ? !/nicht im Plan/.test(got.text) && /im Plan/.test(got.text) : /nicht im Plan/.test(got.text));
    const cardOk = card === undefined || card.off === !want;
    out.push([got && got.onTrack === String(want) && textOk && cardOk,
      `${name}: marked ${want ? '"im Plan"' : '"nicht im Plan"'}`, `page shows ${JSON.stringify(got)}, card ${JSON.stringify(card)}, API on_track ${want}`]);
  };
  for (const it of items) {
    const c = await shown(page, '', it.item);
    cmp(`${it.item} done`, c.done, { text: int(it.done), value: String(it.done) });
    cmp(`${it.item} target`, c.target, { text: int(it.target), value: String(it.target) });
    cmp(`${it.item} ratio`, c.ratio, { text: pct(it.ratio), value: String(it.ratio) });
    cmpTrack(`${it.item}`, c.ontrack, it.on_track === true, cards.find((x) => x.item === it.item));
  }
  if (ressortProgress) {
    for (const it of ressortProgress.items) {
      const c = await shown(page, `ressort-${ressortCode}-${it.item}-`);
      const name = `Ressort ${ressortCode} ${it.item}`;
      const ok = c.done && c.done.text === int(it.done) && c.target && c.target.text === int(it.target) &&
        c.ratio && c.ratio.text === pct(it.ratio) && c.ontrack && c.ontrack.onTrack === String(it.on_track === true) &&
        (it.on_track === true) === !/nicht im Plan/.test(c.ontrack.text);
      out.push([ok, `${name}: ${int(it.done)} / ${int(it.target)}, ${pct(it.ratio).replace('\u00a0', ' ')}, ${it.on_track ? 'im Plan' : 'nicht im Plan'}`,
        `page shows ${JSON.stringify(c)}, API says ${JSON.stringify({ done: it.done, target: it.target, ratio: it.ratio, on_track: it.on_track })}`]);
    }
  }
  return out;
}

const watchdog = setTimeout(() => { check(false, 'finished within 120 s'); finish(); }, 120000);
watchdog.unref();

// 1. The page itself: self-contained, small, German.
// With access.public_dashboard false even GET / wants a token, which a browser cannot send by
// itself; the test then adds it to that one request, as a reverse proxy or SSO gateway would.
let root = await fetch(BASE).catch((e) => ({ error: e }));
const rootNeedsAuth = !root.error && root.status === 401;
if (rootNeedsAuth && TOKEN) {
  console.log('# GET / wants a token: the browser test adds it to the page request only');
  root = await fetch(BASE, { headers: { Authorization: `Bearer ${TOKEN}` } }).catch((e) => ({ error: e }));
}
if (root.error || !root.ok) {
  check(false, `GET ${BASE.href} answers 200`, root.error ? String(root.error) : `HTTP ${root.status}`);
  finish();
}
const html = await root.text();
check(/^text\/html/.test(root.headers.get('content-type') || ''), 'GET / is text/html', root.headers.get('content-type'));
check(Buffer.byteLength(html) <= PAGE_LIMIT, `page is ${Buffer.byteLength(html)} bytes (at most ${PAGE_LIMIT})`);
const external = html.match(/(?:src|href|action)\s*=\s*["']?\s*(?:https?:)?\/\/[^"'\s>]*|url\(\s*["']?\s*(?:https?:)?\/\/[^)]*|@import[^;]*|https?:\/\/[^\s"'<)]*/gi) || [];
check(external.length === 0, 'page references no other host (no CDN, fonts, images)', external.join('\n'));
check(/<html[^>]*\blang="de"/.test(html), 'page is marked as German (lang="de")');

// 2. What the API says without the browser.
const noToken = await api('v1/progress', false);
const needAuth = noToken.status === 401;
if (needAuth && !TOKEN) {
  check(false, 'GET /v1/progress without a token', 'the daemon wants a token: pass a reader token as the third argument');
  finish();
}
const progress = await api('v1/progress');
if (!check(progress.status === 200 && progress.json && Array.isArray(progress.json.items) && progress.json.items.length > 0,
  `GET /v1/progress answers items (${progress.json && progress.json.items ? progress.json.items.length : 0})`, `HTTP ${progress.status} ${progress.body.slice(0, 300)}`)) finish();
const ressortsRes = await api('v1/ressorts');
const ressorts = ressortsRes.status === 200 && ressortsRes.json ? ressortsRes.json.ressorts : null;
check(Array.isArray(ressorts) && ressorts.length > 0, `GET /v1/ressorts lists Ressorts (${ressorts ? ressorts.length : 0})`, `HTTP ${ressortsRes.status} ${ressortsRes.body.slice(0, 300)}`);
const ressortCode = process.env.RESSORT || (ressorts && ressorts[0] && ressorts[0].ressort);
let ressortProgress = null;
if (ressortCode) {
  const r = await api(`v1/progress?ressort=${encodeURIComponent(ressortCode)}`);
  check(r.status === 200 && r.json && Array.isArray(r.json.items), `GET /v1/progress?ressort=${ressortCode} answers`, `HTTP ${r.status} ${r.body.slice(0, 300)}`);
  if (r.status === 200) ressortProgress = r.json;
}

// 3. The browser: a fresh profile, nothing but the base URL reachable.
const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'rolloutd-e2e-'));
let context;
try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
    viewport: { width: 1440, height: 900 },
    locale: 'de-DE',
    timezoneId: 'Europe/Berlin',
    serviceWorkers: 'block',
  });
} catch (e) {
  check(false, `start ${CHROMIUM}`, e.message);
  fs.rmSync(profile, { recursive: true, force: true });
  finish();
}
const foreign = [];
const jsErrors = [];
const authSent = [];
await context.route('**/*', (route) => {
  const u = new URL(route.request().url());
  if (rootNeedsAuth && route.request().resourceType() === 'document' && u.href === BASE.href) {
    return route.continue({ headers: { ...route.request().headers(), authorization: `Bearer ${TOKEN}` } });
  }
  if (u.protocol === 'data:' || u.origin === BASE.origin) return route.continue();
  foreign.push(u.href);
  return route.abort('blockedbyclient');
});
context.on('request', (req) => {
  const u = req.url();
  if (!u.startsWith('data:') && new URL(u).origin !== BASE.origin && !foreign.includes(u)) foreign.push(u);
  if (/\/v1\/progress/.test(u) && req.headers().authorization) authSent.push(u);
});
const page = context.pages()[0] || await context.newPage();
page.on('pageerror', (e) => jsErrors.push(String(e)));
page.on('console', (m) => { if (m.type() === 'error' && !/^Failed to load resource/.test(m.text())) jsErrors.push(m.text()); });

try {
  await page.goto(BASE.href, { waitUntil: 'domcontentloaded' });
  if (needAuth) {
    const form = await page.waitForSelector('#tokenForm:not([hidden])', { timeout: 15000 }).then(() => true, () => false);
    check(form, 'without a token the page asks for one (401 → token field)');
    await page.fill('#tokenInput', TOKEN);
    await page.click('#tokenForm button[type=submit]');
  }
  const loaded = await page.waitForSelector('html[data-loaded="true"]', { timeout: 30000 }).then(() => true, () => false);
  if (!check(loaded, 'page shows the data (html[data-loaded])', await page.$eval('#alert', (a) => a.textContent).catch(() => ''))) throw new Error('not loaded');
  if (needAuth) {
    const kept = await page.evaluate(() => sessionStorage.getItem('rolloutd.reader_token'));
    check(kept === TOKEN && authSent.length > 0, 'token kept in sessionStorage and sent as Authorization: Bearer', `stored ${kept ? 'a token' : 'nothing'}, ${authSent.length} requests with it`);
  }
  if (ressorts) {
    await page.waitForSelector(`[data-testid="ressort-${ressortCode}-${progress.json.items[0].item}-done"]`, { timeout: 15000 }).catch(() => {});
  }

  // Compare; when the numbers moved between the page's fetch and ours, wait for the next poll.
  let res = [];
  for (let attempt = 0; attempt < 4; attempt++) {
    const p = attempt ? (await api('v1/progress')).json : progress.json;
    const rp = ressortCode && attempt ? (await api(`v1/progress?ressort=${encodeURIComponent(ressortCode)}`)).json : ressortProgress;
    res = await compare(page, p, ressortCode, rp);
    if (res.every((r) => r[0])) break;
    const before = await page.getAttribute('html', 'data-refreshes');
    await page.waitForFunction((b) => document.documentElement.getAttribute('data-refreshes') !== b, before, { timeout: 15000 }).catch(() => {});
  }
  for (const [ok, name, detail] of res) check(ok, name, detail);

  // The header: stand and service status.
  const stand = await page.$eval('[data-testid="generated-at"]', (e) => ({ text: e.textContent.trim(), value: e.getAttribute('data-value') }));
  check(/\d\d\.\d\d\.\d{4}/.test(stand.text) && !!stand.value, `header shows the Stand (${stand.text})`, JSON.stringify(stand));
  const status = await api('status');
  const svc = await page.$eval('[data-testid="service-status"] .pill', (e) => ({ text: e.textContent.trim(), value: e.getAttribute('data-value') })).catch(() => null);
  check(status.json && svc && svc.value === status.json.status, `header shows the service status (${svc ? svc.text : 'none'})`,
    `page ${JSON.stringify(svc)}, /status says ${status.json && status.json.status}`);

  // The burn-up chart: one path per item, with a target line and deadlines.
  const chart = await page.evaluate(() => {
    const svg = document.querySelector('svg[data-testid="burnup"]');
    if (!svg) return null;
    return {
      paths: [...svg.querySelectorAll('path[data-item]')].map((p) => ({ item: p.getAttribute('data-item'), points: (p.getAttribute('d').match(/[ML]/g) || []).length })),
      targets: svg.querySelectorAll('[data-testid="burnup-target"]').length,
      deadlines: svg.querySelectorAll('[data-testid="burnup-deadline"]').length,
      text: svg.textContent,
    };
  });
  const want = progress.json.items.map((i) => i.item);
  check(chart && want.every((k) => chart.paths.some((p) => p.item === k && p.points >= 2)) && chart.paths.length === want.length,
    `burn-up chart has one path per item (${chart ? chart.paths.length : 0} of ${want.length})`, JSON.stringify(chart && chart.paths));
  check(chart && chart.targets >= 1 && chart.deadlines >= 1 && /Datum/.test(chart.text) && /Zielwert/.test(chart.text) && /Stichtag/.test(chart.text),
    'burn-up chart has a target line, deadlines and German axis labels', JSON.stringify(chart && { targets: chart.targets, deadlines: chart.deadlines }));

  fs.mkdirSync(path.dirname(path.resolve(shotPath)), { recursive: true });
  await page.screenshot({ path: shotPath, fullPage: true });
  const size = fs.existsSync(shotPath) ? fs.statSync(shotPath).size : 0;
  check(size > 10000, `screenshot saved to ${shotPath} (${size} bytes)`);
} catch (e) {
  if (e.message !== 'not loaded') check(false, 'browser session', e.stack || String(e));
  await page.screenshot({ path: shotPath, fullPage: true }).catch(() => {});
}
check(foreign.length === 0, `no request to a host other than ${BASE.origin}`, foreign.join('\n'));
check(jsErrors.length === 0, 'no JavaScript errors on the page', jsErrors.join('\n'));
await context.close().catch(() => {});
fs.rmSync(profile, { recursive: true, force: true });
finish();
