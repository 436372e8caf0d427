// Checks that docs/openapi.yaml describes the whole contract, beyond what redocly checks:
//  - every `METHOD /path` named in DOMAIN.md (when ../shared is beside the checkout) and in
//    docs/contract-notes.md is an operation;
//  - the error code enums per status are exactly the table of docs/contract-notes.md;
//  - every operation names its roles (x-roles), answers 405, and every response with a body has
//    an example; every error response uses the error schema of its status; 401 carries
//    WWW-Authenticate, 405 Allow, 503 Retry-After.
// Usage: node check-openapi.cjs ROOT NODE_MODULES_DIR
'use strict';
const fs = require('fs');
const path = require('path');
const { createRequire } = require('module');

const [root, nodeModules] = process.argv.slice(2);
const req = createRequire(path.resolve(nodeModules, '..', 'noop.js'));
const yaml = req('js-yaml');

const problems = [];
const doc = yaml.load(fs.readFileSync(path.join(root, 'docs/openapi.yaml'), 'utf8'));

function resolve(obj) {
  while (obj && obj.$ref) {
    const parts = obj.$ref.replace(/^#\//, '').split('/').map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
    obj = parts.reduce((o, k) => (o ? o[k] : undefined), doc);
  }
  return obj;
}

// --- every path of the contract -------------------------------------------------------------
const wanted = new Set([
  'POST /v1/events', 'GET /v1/employees/{id}', 'GET /v1/employees/{id}/events', 'GET /v1/progress',
  'GET /v1/progress/daily', 'GET /v1/ressorts', 'GET /status', 'GET /metrics', 'GET /healthz',
  'GET /readyz', 'GET /',
]);
const sources = [path.join(root, 'docs/contract-notes.md'), path.join(root, '../shared/DOMAIN.md')];
for (const file of sources) {
  if (!fs.existsSync(file)) continue;
  const text = fs.readFileSync(file, 'utf8');
  for (const m of text.matchAll(/`(GET|POST|PUT|PATCH|DELETE) (\/[^`\s?]*)/g)) {
    // DOMAIN.md writes "GET /v1/employees/{id}[/events]" nowhere, but be tolerant of [..] forms
    const p = m[2].replace(/\[.*$/, '');
    wanted.add(`${m[1]} ${p}`);
  }
}
for (const op of wanted) {
  const [method, p] = op.split(' ');
  if (!doc.paths[p] || !doc.paths[p][method.toLowerCase()]) problems.push(`missing operation ${op}`);
}

// --- error codes per status as in contract-notes.md -------------------------------------------
const notes = fs.readFileSync(path.join(root, 'docs/contract-notes.md'), 'utf8');
let tables = 0;
for (const line of notes.split('\n')) {
  const m = line.match(/^\|\s*(\d{3})\s*\|(.*)\|\s*$/);
  if (!m) continue;
  tables++;
  const status = m[1];
  const codes = [...m[2].replace(/\([^)]*\)/g, '').matchAll(/`([a-z][a-z0-9_]*)`/g)].map((x) => x[1]);
  const schema = doc.components.schemas[`ErrorCode${status}`];
  if (!schema) {
    problems.push(`no schema ErrorCode${status} for the codes of status ${status}`);
    continue;
  }
  const have = new Set(schema.enum);
  for (const c of codes) if (!have.has(c)) problems.push(`ErrorCode${status} lacks ${c} (contract-notes.md)`);
  for (const c of have) if (!codes.includes(c)) problems.push(`ErrorCode${status} has ${c}, not in contract-notes.md`);
}
if (tables < 5) problems.push(`found only ${tables} rows of the error table in contract-notes.md`);

// --- per operation ----------------------------------------------------------------------------
const methods = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];
let operations = 0;
for (const [p, item] of Object.entries(doc.paths)) {
  for (const method of methods) {
    const op = item[method];
    if (!op) continue;
    operations++;
    const name = `${method.toUpperCase()} ${p}`;
    if (!Array.isArray(op['x-roles']) || op['x-roles'].length === 0) problems.push(`${name}: no x-roles`);
    if (!op.responses['405']) problems.push(`${name}: no 405 response`);
    for (const [status, ref] of Object.entries(op.responses)) {
      const r = resolve(ref);
      for (const [type, media] of Object.entries(r.content || {})) {
        if (media.example === undefined && !media.examples)
          problems.push(`${name} ${status} ${type}: no example`);
      }
      if (!/^[45]\d\d$/.test(status)) continue;
      const media = (r.content || {})['application/json'];
      const schemaRef = media && media.schema && media.schema.$ref;
      // /status and /readyz answer 503 with their own body (the summary, the readiness flags)
      if (!(['GET /status', 'GET /readyz'].includes(name) && status === '503') && schemaRef !== `#/components/schemas/Error${status}`)
        problems.push(`${name} ${status}: schema is ${schemaRef}, not Error${status}`);
      const headers = r.headers || {};
      if (status === '401' && !headers['WWW-Authenticate']) problems.push(`${name} 401: no WWW-Authenticate header`);
      if (status === '405' && !headers.Allow) problems.push(`${name} 405: no Allow header`);
      if (status === '503' && !headers['Retry-After']) problems.push(`${name} 503: no Retry-After header`);
    }
  }
}
const post = doc.paths['/v1/events'].post;
for (const s of ['200', '201', '400', '401', '403', '404', '405', '409', '413', '415', '503'])
  if (!post.responses[s]) problems.push(`POST /v1/events: no ${s} response`);

if (problems.length) {
  for (const p of problems) console.log(p);
  process.exit(1);
}
console.log(`${operations} operations, ${wanted.size} contract paths, error codes match contract-notes.md`);
