// Sanity check of docker-compose.yml without a Docker engine: it parses as YAML (with merge
// keys), and the services are wired as the README promises: postgres with a pg_isready
// healthcheck, a one-shot migrate from the rolloutd image after postgres is healthy, rolloutd
// after migrate completed, Prometheus scraping rolloutd:8080 with config/prometheus.yml; every
// bind-mounted file exists in the repository.
// Usage: node check-compose.cjs ROOT NODE_MODULES_DIR
'use strict';
const fs = require('fs');
const path = require('path');
const { createRequire } = require('module');

const [root, nodeModules] = process.argv.slice(2);
const req = createRequire(path.resolve(nodeModules, '..', 'noop.js'));
const yaml = req('js-yaml');

const problems = [];
const check = (ok, what) => { if (!ok) problems.push(what); };
const compose = yaml.load(fs.readFileSync(path.join(root, 'docker-compose.yml'), 'utf8'));
const s = compose.services || {};
const words = (v) => (Array.isArray(v) ? v.join(' ') : String(v || ''));
const cond = (svc, dep) => s[svc] && s[svc].depends_on && s[svc].depends_on[dep] && s[svc].depends_on[dep].condition;

for (const name of ['postgres', 'migrate', 'rolloutd', 'prometheus']) check(s[name], `no service ${name}`);
if (problems.length === 0) {
  check(/^postgres:15/.test(s.postgres.image), 'postgres is not postgres:15');
  check(/pg_isready/.test(words(s.postgres.healthcheck && s.postgres.healthcheck.test)), 'postgres has no pg_isready healthcheck');

  check(s.migrate.image === s.rolloutd.image, 'migrate does not run the rolloutd image');
  const migrateCmd = `${words(s.migrate.entrypoint)} ${words(s.migrate.command)}`;
  check(/^rolloutctl .*--config \/etc\/rolloutd\/rolloutd\.conf.* migrate$/.test(migrateCmd),
        `migrate runs "${migrateCmd}", not rolloutctl --config /etc/rolloutd/rolloutd.conf ... migrate`);
  check(cond('migrate', 'postgres') === 'service_healthy', 'migrate does not wait for postgres to be healthy');
  check(cond('rolloutd', 'migrate') === 'service_completed_successfully', 'rolloutd does not wait for migrate to complete');
  check(words(s.rolloutd.ports).includes('8080'), 'rolloutd does not publish 8080');

  for (const [name, svc] of Object.entries(s)) {
    for (const v of svc.volumes || []) {
      const src = typeof v === 'string' ? v.split(':')[0] : v.type === 'bind' ? v.source : null;
      if (src && src.startsWith('.')) check(fs.existsSync(path.join(root, src)), `${name}: bind source ${src} does not exist`);
    }
  }
  for (const name of ['migrate', 'rolloutd']) {
    const targets = (s[name].volumes || []).map((v) => (typeof v === 'string' ? v.split(':')[1] : v.target));
    check(targets.includes('/etc/rolloutd/rolloutd.conf'), `${name} does not mount /etc/rolloutd/rolloutd.conf`);
  }
  const promVolumes = words((s.prometheus.volumes || []).map((v) => (typeof v === 'string' ? v : `${v.source}:${v.target}`)));
  check(promVolumes.includes('config/prometheus.yml'), 'prometheus does not use config/prometheus.yml');
  const prom = yaml.load(fs.readFileSync(path.join(root, 'config/prometheus.yml'), 'utf8'));
  const targets = JSON.stringify(prom.scrape_configs || []);
  check(targets.includes('rolloutd:8080'), 'config/prometheus.yml does not scrape rolloutd:8080');
}

if (problems.length) {
  for (const p of problems) console.log(p);
  process.exit(1);
}
console.log(`${Object.keys(s).length} services wired as expected`);
