# shellcheck shell=bash
# bench/lib.sh: what bench/run and bench/ab share. Sourced after ROOT, PGBIN, PG_OS_USER and
# die() are set; write_config reads DB, HTTP_PORT, PGHOST and PGPORT when it is called.

# PostgreSQL: tools/dev's own throwaway-cluster functions (pg_dirs, as_pg, pg_start, pg_stop,
# psql_super), taken from tools/dev at run time so that the benchmark measures the settings the
# development and test clusters have (var/bench, run as `postgres`, unix socket only,
# synchronous_commit on).
# shellcheck disable=SC1090
source <(sed -n -e '/^pg_dirs() {/,/^}/p' -e '/^as_pg() {.*}$/p' -e '/^pg_start() {/,/^}/p' \
  -e '/^pg_stop() {/,/^}/p' -e '/^psql_super() {.*}$/p' "$ROOT/tools/dev")
for f in pg_dirs as_pg pg_start pg_stop psql_super; do
  declare -F "$f" >/dev/null || die "tools/dev no longer defines $f(); the benchmark takes its cluster functions from there"
done

write_config() { # FILE POOL: rolloutd on $DB, listening on $HTTP_PORT, with POOL connections
  cat >"$1" <<CONF
# Written by bench/${0##*/}; see config/rolloutd.conf for every setting.
listen = { address = "127.0.0.1"; port = $HTTP_PORT; };
database = {
  conninfo = "host=$PGHOST port=$PGPORT dbname=$DB user=rolloutd application_name=rolloutd";
  admin_conninfo = "host=$PGHOST port=$PGPORT dbname=$DB user=rolloutctl application_name=rolloutctl";
  pool_size = $2;
};
log = { level = "warn"; };
CONF
}

# the machine's busy and idle clock ticks so far, over all CPUs (iowait counts as busy)
busy_idle() { awk '/^cpu / { print $2 + $3 + $4 + $6 + $7 + $8 + $9, $5 }' /proc/stat; }
