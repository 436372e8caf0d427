#!/usr/bin/env node
// A stand-in for rolloutd, for developing the dashboard page ONLY.
//
// It serves daemon/dashboard/index.html at / and canned JSON shaped as in docs/contract-notes.md
// and ../shared/DOMAIN.md (GET /v1/progress[?ressort=], /v1/progress/daily[?ressort=],
// /v1/ressorts, /status). The numbers are made up but consistent (Ressorts sum to the whole,
// pro-rata targets by headcount, forecast and on_track computed as the contract says).
// No test of the suite runs against it: tests/e2e/dashboard.test.mjs is run against the real
// daemon by tools/dev test. Running it here against the mock is a developer's shortcut.
//
//   node tests/e2e/mock-server.mjs [--port 8099] [--token rlt_...] [--private] [--empty] [--no-ressorts]
//
// --token makes /v1/* answer 401 without that Bearer token (as with access.public_dashboard
// false); --private wants it for GET / too; --empty serves no events at all; --no-ressorts
// answers 404 on /v1/ressorts.
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const PAGE = path.join(here, '..', '..', 'daemon', 'dashboard', 'index.html');

const opt = { port: 8099, token: null, private: false, empty: false, ressorts: true };
for (let i = 2; i < process.argv.length; i++) {
  const a = process.argv[i];
  if (a === '--port') opt.port = Number(process.argv[++i]);
  else if (a === '--token') opt.token = process.argv[++i];
  else if (a === '--private') opt.private = true;
  else if (a === '--empty') opt.empty = true;
  else if (a === '--no-ressorts') opt.ressorts = false;
  else { console.error(`unknown argument ${a}`); process.exit(2); }
}

const ITEMS = [
  { item: 'mobile_device', title: 'Mobile Arbeitsplatzausstattung',
    recommendation: 'Priorität auf mobile, digitale Arbeitsplatzausstattung',
    target: 72000, deadline: '2027-12-31', start: '2026-03-02', share: 0.46, rate: 1.0 },
  { item: 'hessen_smartphone', title: 'HessenSmartphone',
    recommendation: 'Erweiterung der Nutzergruppe des HessenSmartphones',
    target: 30000, deadline: '2027-06-30', start: '2026-04-13', share: 0.58, rate: 1.3 },
  { item: 'hessen_voice', title: 'HessenVoice (CTI, One-Number)',
    recommendation: 'Rollout von HessenVoice mit CTI und One-Number-Service',
    target: 72000, deadline: '2027-12-31', start: '2026-06-01', share: 0.17, rate: 0.45 },
  { item: 'wlan_autologin', title: 'Automatische WLAN-Einwahl',
    recommendation: 'Automatische WLAN-Einwahl in hessischen Dienststellen',
    target: 72000, deadline: '2027-03-31', start: '2026-02-02', share: 0.63, rate: 0.8 },
];

const RESSORTS = [
  ['StK', 'Hessische Staatskanzlei', 1400, 1.15],
  ['HMdIS', 'Hessisches Ministerium des Innern, für Sicherheit und Heimatschutz', 21500, 0.92],
  ['HMdF', 'Hessisches Ministerium der Finanzen', 14200, 1.08],
  ['HMdJ', 'Hessisches Ministerium der Justiz und für den Rechtsstaat', 15800, 0.81],
  ['HMKB', 'Hessisches Ministerium für Kultus, Bildung und Chancen', 3900, 1.02],
  ['HMWK', 'Hessisches Ministerium für Wissenschaft und Forschung, Kunst und Kultur', 2100, 1.2],
  ['HMWVW', 'Hessisches Ministerium für Wirtschaft, Energie, Verkehr, Wohnen und ländlichen Raum', 6300, 0.97],
  ['HMLU', 'Hessisches Ministerium für Landwirtschaft und Umwelt, Weinbau, Forsten, Jagd und Heimat', 4100, 1.05],
  ['HMFG', 'Hessisches Ministerium für Familie, Senioren, Sport, Gesundheit und Pflege', 1500, 1.1],
  ['HMAS', 'Hessisches Ministerium für Arbeit, Integration, Jugend und Soziales', 1200, 0.88],
].map(([ressort, name, headcount, pace]) => ({ ressort, name, headcount, pace }));
const HEADCOUNT = RESSORTS.reduce((s, r) => s + r.headcount, 0);

const DAY = 86400000;
const today = new Date(new Date().toISOString().slice(0, 10) + 'T00:00:00Z');
const iso = (d) => d.toISOString().slice(0, 10);
const addDays = (d, n) => new Date(d.getTime() + n * DAY);

// Cumulative done of an item for one Ressort on day t (days since the item's start): an S-curve
// whose pace differs per Ressort, with a little deterministic noise, never decreasing by much.
function curve(it, r, t, span) {
  if (t < 0 || opt.empty) return 0;
  const x = t / span;
  const pace = r.pace * it.rate;
  const s = Math.pow(x, 1.35 + 0.25 * (1 - pace));
  const noise = 1 + 0.02 * Math.sin(t * 1.7 + r.headcount);
  const target = Math.round((it.target * r.headcount) / HEADCOUNT);
  return Math.max(0, Math.floor(target * it.share * pace * s * noise));
}

function series(it, rs) {
  const start = new Date(it.start + 'T00:00:00Z');
  const span = Math.round((today - start) / DAY);
  const out = [];
  let last = -1;
  for (let t = 0; t <= span; t++) {
    let v = 0;
    for (const r of rs) v += curve(it, r, t, span);
    if (v !== last) { out.push([iso(addDays(start, t)), v]); last = v; }
  }
  return out;
}

function valueOn(days, dateIso) {
  let v = 0;
  for (const [d, n] of days) { if (d <= dateIso) v = n; else break; }
  return v;
}

function figures(it, rs, scopeRessort) {
  const days = series(it, rs);
  const done = days.length ? days[days.length - 1][1] : 0;
  const rate = done - valueOn(days, iso(addDays(today, -7)));
  const hc = rs.reduce((s, r) => s + r.headcount, 0);
  const target = scopeRessort ? Math.round((it.target * hc) / HEADCOUNT) : it.target;
  let forecast = null;
  if (done >= target) forecast = iso(today);
  else if (rate > 0) forecast = iso(addDays(today, Math.ceil((target - done) / (rate / 7))));
  const onTrack = done >= target || (forecast !== null && forecast <= it.deadline);
  const k = (f) => Math.round(done * f);
  return {
    days,
    body: {
      item: it.item, title: it.title, recommendation: it.recommendation, target,
      target_source: scopeRessort ? 'pro_rata' : 'overall', deadline: it.deadline,
      counts: { planned: k(0.21) + (opt.empty ? 0 : 40), ordered: k(0.09), delivered: k(0.05),
        active: done, returned: k(0.012), cancelled: k(0.006) },
      done, ratio: target ? Math.round((done / target) * 10000) / 10000 : 0, rate_7d: rate,
      forecast, on_track: onTrack,
    },
  };
}

function scopeOf(url) {
  const code = url.searchParams.get('ressort');
  if (code === null) return { rs: RESSORTS, scope: { ressort: null, dienststelle: null } };
  const r = RESSORTS.find((x) => x.ressort === code);
  if (!r) return null;
  return { rs: [r], scope: { ressort: code, dienststelle: null } };
}

function send(res, status, body, headers = {}) {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': typeof body === 'string' ? 'text/html; charset=utf-8' :
    'application/json', 'Cache-Control': 'no-store', ...headers });
  res.end(text);
}
const err = (code, message, field = null) => ({ error: { code, message, field } });

const started = Date.now();
const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://mock');
  const p = url.pathname;
  if (req.method !== 'GET') return send(res, 405, err('method_not_allowed', 'GET only'), { Allow: 'GET' });
  const gated = p.startsWith('/v1/') || (opt.private && (p === '/' || p === '/index.html'));
  if (gated && opt.token) {
    const auth = req.headers.authorization || '';
    if (!auth) return send(res, 401, err('missing_token', 'a Bearer token is needed'), { 'WWW-Authenticate': 'Bearer' });
    if (auth !== `Bearer ${opt.token}`) return send(res, 401, err('invalid_token', 'unknown token'), { 'WWW-Authenticate': 'Bearer' });
  }
  if (p === '/' || p === '/index.html') return send(res, 200, fs.readFileSync(PAGE, 'utf8'));
  const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  if (p === '/v1/ressorts') {
    if (!opt.ressorts) return send(res, 404, err('not_found', `no route ${p}`));
    return send(res, 200, { ressorts: RESSORTS.map(({ ressort, name, headcount }) => ({ ressort, name, headcount })) });
  }
  if (p === '/v1/progress' || p === '/v1/progress/daily') {
    const s = scopeOf(url);
    if (!s) return send(res, 404, err('unknown_ressort', `unknown Ressort "${url.searchParams.get('ressort')}"`, 'ressort'));
    const figs = ITEMS.map((it) => figures(it, s.rs, s.scope.ressort));
    if (p === '/v1/progress') return send(res, 200, { scope: s.scope, generated_at: now, items: figs.map((f) => f.body) });
    return send(res, 200, { scope: s.scope, items: figs.map((f) => ({ item: f.body.item, target: f.body.target,
      deadline: f.body.deadline, days: f.days })) });
  }
  if (p === '/status') {
    const figs = ITEMS.map((it) => figures(it, RESSORTS, null).body);
    return send(res, 200, { status: 'ok', version: '0.1.0', schema_version: 4,
      database: { reachable: true, connections: 4, connections_ready: 4 },
      uptime_seconds: Math.round((Date.now() - started) / 1000), queue_depth: 0,
      last_event_at: opt.empty ? null : new Date(Date.now() - 95000).toISOString().replace(/\.\d+Z$/, 'Z'),
      generated_at: now, items: figs.map(({ item, done, target, ratio }) => ({ item, done, target, ratio })) });
  }
  return send(res, 404, err('not_found', `no route ${p}`));
});
server.listen(opt.port, '127.0.0.1', () => {
  console.error(`mock rolloutd (development only) on http://127.0.0.1:${opt.port}/`);
});
