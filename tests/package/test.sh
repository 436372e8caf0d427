#!/usr/bin/env bash
# tests/package/test.sh ROOT: builds the Debian package (tests/package/package.sh, in
# ROOT/build-pkgtest), checks what is in it, unpacks it into a scratch root and runs what it
# installed there. One line per check, then `N passed, M failed[, K skipped]`; exit status 1
# when any check failed.
#
# With ROLLOUT_TEST_PGHOST and ROLLOUT_TEST_PGPORT (a PostgreSQL where user postgres may create
# databases; `tools/dev test` sets them) the unpacked rolloutctl migrates a scratch database
# and the unpacked rolloutd runs against it with a fake systemd notify socket: READY=1, STATUS=,
# WATCHDOG=1, SIGHUP, STOPPING=1 on SIGTERM, exit 78 on a database without the schema.
# Without them those checks are skipped.
#
# With ROLLOUT_PACKAGE_INSTALL=1 (root, and no rolloutd package installed) the package is also
# installed on this machine with dpkg -i, removed and purged; the user rolloutd is deleted
# again when it was not there before.
#
# Tools: dpkg-deb, dpkg-shlibdeps (dpkg-dev), file, man (man-db), systemd-analyze (systemd),
# promtool (prometheus), lintian (optional: its findings are printed; only errors fail), perl,
# curl.
set -uo pipefail

ROOT=$(cd "${1:?usage: tests/package/test.sh ROOT}" && pwd)
HERE="$ROOT/tests/package"
BUILD="$ROOT/build-pkgtest"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/rolloutd-pkgtest.XXXXXX")
X="$WORK/root" # the scratch root the package is unpacked into
mkdir -p "$X"
DAEMON_PID=
LISTENER_PID=
cleanup() {
  [ -n "$DAEMON_PID" ] && kill -KILL "$DAEMON_PID" 2>/dev/null
  [ -n "$LISTENER_PID" ] && kill -TERM "$LISTENER_PID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

passed=0 failed=0 skipped=0
ok() { passed=$((passed + 1)); printf 'ok      %s\n' "$1"; }
bad() { failed=$((failed + 1)); printf 'FAILED  %s\n' "$1"; [ -n "${2:-}" ] && printf '%s\n' "$2" | sed 's/^/        /'; }
skip() { skipped=$((skipped + 1)); printf 'skipped %s\n' "$1"; }
check() { # NAME COMMAND...: ok when the command succeeds; its output is shown when it fails
  local name=$1 out; shift
  if out=$("$@" 2>&1); then ok "$name"; else bad "$name" "$(printf '%s' "$out" | tail -20)"; fi
}

VERSION=$(sed -n 's/^project(rolloutd VERSION \([0-9.]*\).*/\1/p' "$ROOT/CMakeLists.txt")
DEB_VERSION="$VERSION-1"

# ---- build ------------------------------------------------------------------------------------
DEB=$(BUILD_DIR="$BUILD" "$HERE/package.sh" "$ROOT" 2>"$WORK/package.log")
if [ -n "$DEB" ] && [ -f "$DEB" ]; then
  ok "package builds: ${DEB#"$ROOT"/}"
else
  bad "package builds" "$(tail -30 "$WORK/package.log")"
  echo "$passed passed, $failed failed"
  exit 1
fi

# ---- control information ----------------------------------------------------------------------
field() { dpkg-deb -f "$DEB" "$1"; }
control_fields() {
  [ "$(field Package)" = rolloutd ] || { echo "Package: $(field Package)"; return 1; }
  [ "$(field Version)" = "$DEB_VERSION" ] || { echo "Version: $(field Version), want $DEB_VERSION"; return 1; }
  [ -n "$(field Maintainer)" ] && [ -n "$(field Description)" ] || { echo "no Maintainer or Description"; return 1; }
  local dep lib
  dep=$(field Depends)
  for lib in adduser libc6 libpq5 libevent-2.1-7 libevent-openssl-2.1-7 libconfig9 libjansson4 libssl3; do
    [[ ", $dep," == *", $lib "* || ", $dep," == *", $lib,"* ]] || { echo "Depends lacks $lib: $dep"; return 1; }
  done
}
check "control: Package rolloutd, Version $DEB_VERSION, Depends from dpkg-shlibdeps ($(field Depends | tr -d '\n' | cut -c1-60)...)" control_fields

control_files() {
  local info; info=$(dpkg-deb -I "$DEB") || return 1
  local f
  for f in conffiles postinst prerm postrm md5sums; do
    grep -qE "^ +[0-9]+ bytes, +[0-9]+ lines +\*? *$f( |$)" <<<"$info" || { echo "no $f in the control archive"; echo "$info"; return 1; }
  done
  for f in postinst prerm postrm; do
    grep -qE "^ +[0-9]+ bytes, +[0-9]+ lines +\* +$f " <<<"$info" || { echo "$f is not executable"; return 1; }
  done
  dpkg-deb --ctrl-tarfile "$DEB" | tar -xO ./conffiles | grep -qx /etc/rolloutd/rolloutd.conf ||
    { echo "conffiles does not list /etc/rolloutd/rolloutd.conf"; return 1; }
}
check "control: conffiles lists /etc/rolloutd/rolloutd.conf; postinst, prerm, postrm executable" control_files

# ---- contents ---------------------------------------------------------------------------------
contents() {
  local list; list=$(dpkg-deb -c "$DEB" | awk '{print $1, $2, $NF}') || return 1
  local want=(
    "-rwxr-xr-x root/root ./usr/sbin/rolloutd"
    "-rwxr-xr-x root/root ./usr/bin/rolloutctl"
    "-rw-r--r-- root/root ./etc/rolloutd/rolloutd.conf"
    "-rw-r--r-- root/root ./lib/systemd/system/rolloutd.service"
    "-rw-r--r-- root/root ./usr/share/man/man8/rolloutd.8.gz"
    "-rw-r--r-- root/root ./usr/share/man/man1/rolloutctl.1.gz"
    "-rw-r--r-- root/root ./usr/share/doc/rolloutd/copyright"
    "-rw-r--r-- root/root ./usr/share/doc/rolloutd/changelog.Debian.gz"
    "-rw-r--r-- root/root ./usr/share/doc/rolloutd/operations.md"
    "-rw-r--r-- root/root ./usr/share/doc/rolloutd/rolloutd-alerts.yml"
  )
  local m rc=0
  for m in "$ROOT"/schema/[0-9][0-9][0-9]_*.sql; do
    want+=("-rw-r--r-- root/root ./usr/share/rolloutd/schema/$(basename "$m")")
  done
  local w
  for w in "${want[@]}"; do
    grep -qxF -e "$w" <<<"$list" || { echo "missing: $w"; rc=1; }
  done
  # nothing outside the places a package may write to
  local stray; stray=$(awk '{print $3}' <<<"$list" | grep -vE '^\./(etc/rolloutd/|lib/systemd/system/|usr/(bin|sbin|share/(man|doc|rolloutd))/|(etc|lib|lib/systemd|usr|usr/share)/$)' || true)
  [ -z "$stray" ] || { echo "unexpected paths:"; echo "$stray"; rc=1; }
  return $rc
}
check "contents: binaries, conffile, $(ls "$ROOT"/schema/[0-9][0-9][0-9]_*.sql | wc -l) migration(s), man pages, unit, docs; nothing else" contents

changelog_version() {
  local v; v=$(dpkg-deb --fsys-tarfile "$DEB" | tar -xO ./usr/share/doc/rolloutd/changelog.Debian.gz | gzip -dc | sed -n '1s/^rolloutd (\([^)]*\)).*/\1/p')
  [ "$v" = "$DEB_VERSION" ] || { echo "packaging/changelog says $v, the package is $DEB_VERSION: add an entry"; return 1; }
}
check "packaging/changelog's newest entry is $DEB_VERSION" changelog_version

binaries_hardened() {
  local b rc=0
  for b in usr/sbin/rolloutd usr/bin/rolloutctl; do
    local f; f=$(dpkg-deb --fsys-tarfile "$DEB" | tar -xO "./$b" >"$WORK/bin" && file -b "$WORK/bin")
    [[ $f == *", stripped"* ]] || { echo "$b not stripped: $f"; rc=1; }
    [[ $f == *"pie executable"* ]] || { echo "$b not PIE: $f"; rc=1; }
    readelf -d "$WORK/bin" | grep -q 'BIND_NOW' || { echo "$b without BIND_NOW"; rc=1; }
    readelf -lW "$WORK/bin" | grep -q GNU_RELRO || { echo "$b without RELRO"; rc=1; }
  done
  local dbg=("$BUILD"/rolloutd-dbgsym_"$DEB_VERSION"_*.ddeb)
  [ -f "${dbg[0]}" ] || { echo "no rolloutd-dbgsym package"; rc=1; }
  return $rc
}
check "binaries stripped (symbols in rolloutd-dbgsym), PIE, full RELRO" binaries_hardened

# ---- the unpacked package ---------------------------------------------------------------------
if dpkg-deb -x "$DEB" "$X"; then ok "unpacks into a scratch root (dpkg-deb -x)"; else bad "unpacks into a scratch root"; fi
RD="$X/usr/sbin/rolloutd" CTL="$X/usr/bin/rolloutctl" CONF="$X/etc/rolloutd/rolloutd.conf"
SCHEMA_VERSION=$(ls "$ROOT"/schema/[0-9][0-9][0-9]_*.sql | sort | tail -1 | xargs basename | cut -c1-3 | sed 's/^0*//')

version_ok() {
  local out; out=$("$RD" --version) || return 1
  [ "$out" = "rolloutd $VERSION (schema $SCHEMA_VERSION)" ] || { echo "got: $out"; return 1; }
}
check "rolloutd --version: rolloutd $VERSION (schema $SCHEMA_VERSION)" version_ok
check "rolloutd --config <unpacked conf> --check-config" "$RD" --config "$CONF" --check-config

conf_is_example() { # the installed file is the example with the one conninfo line changed
  grep -qx '  conninfo = "host=/var/run/postgresql dbname=rollout user=rolloutd";' "$CONF" ||
    { echo "database.conninfo is not the packaged default"; grep conninfo "$CONF"; return 1; }
  diff <(grep -v '^  conninfo = ' "$ROOT/config/rolloutd.conf") \
       <(sed '1,/^#$/d' "$CONF" | grep -v '^  conninfo = ')
}
check "installed rolloutd.conf: the example with database.conninfo for the local socket" conf_is_example

ctl_help() {
  local out; out=$("$CTL" --help) || return 1
  local c
  for c in migrate import employee device search progress report events targets token verify forget; do
    grep -qE "^  $c " <<<"$out" || { echo "no command $c in --help"; return 1; }
  done
  grep -q '(default /usr/share/rolloutd/schema)' <<<"$out" ||
    { echo "rolloutctl does not look for the migrations in /usr/share/rolloutd/schema:"; grep -i schema <<<"$out"; return 1; }
}
check "rolloutctl --help: every command; migrations looked for in /usr/share/rolloutd/schema" ctl_help

man_pages_cover_commands() { # each command of rolloutctl --help has its entry in rolloutctl(1)
  local page; page=$(MANWIDTH=200 man -l "$X/usr/share/man/man1/rolloutctl.1.gz" 2>/dev/null | col -b)
  local c rc=0
  for c in $("$CTL" --help | sed -n 's/^  \([a-z]\+\) .*/\1/p'); do
    grep -qE "^ {7}$c( |$)" <<<"$page" || { echo "rolloutctl(1) does not describe $c"; rc=1; }
  done
  return $rc
}
check "rolloutctl(1) describes every command of rolloutctl --help" man_pages_cover_commands

for page in man8/rolloutd.8.gz man1/rolloutctl.1.gz; do
  man_clean() {
    local err; err=$(MANWIDTH=80 man --warnings -l "$X/usr/share/man/$1" 2>&1 >/dev/null)
    [ -z "$err" ] || { echo "$err"; return 1; }
  }
  check "man --warnings -l $(basename "$page" .gz): no warnings" man_clean "$page"
done

# ---- the unit ---------------------------------------------------------------------------------
unit_has() { # the unit says what the issue asks for
  local u="$X/lib/systemd/system/rolloutd.service" l rc=0
  for l in 'Type=notify' 'ExecStart=/usr/sbin/rolloutd --config /etc/rolloutd/rolloutd.conf' \
    'ExecReload=/bin/kill -HUP $MAINPID' 'WatchdogSec=30s' 'Restart=on-failure' 'User=rolloutd' \
    'NoNewPrivileges=yes' 'ProtectSystem=strict' 'ProtectHome=yes' 'PrivateTmp=yes' \
    'PrivateDevices=yes' 'ProtectKernelTunables=yes' 'ProtectKernelModules=yes' \
    'ProtectKernelLogs=yes' 'ProtectControlGroups=yes' 'ProtectClock=yes' 'ProtectHostname=yes' \
    'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6' 'RestrictNamespaces=yes' \
    'RestrictRealtime=yes' 'LockPersonality=yes' 'MemoryDenyWriteExecute=yes' \
    'SystemCallArchitectures=native' 'SystemCallFilter=@system-service' 'CapabilityBoundingSet=' \
    'AmbientCapabilities=' 'UMask=0077' 'LimitNOFILE=65536' \
    'After=network-online.target postgresql.service' 'Wants=network-online.target postgresql.service'; do
    grep -qxF "$l" "$u" || { echo "missing: $l"; rc=1; }
  done
  return $rc
}
check "unit: Type=notify, watchdog, reload by SIGHUP, user rolloutd, the hardening settings" unit_has

if command -v systemd-analyze >/dev/null; then
  # verify needs the unit's programs to exist: a copy pointing into the scratch root; its
  # Documentation= man pages are looked up with MANPATH in the scratch root.
  sed -e "s|/usr/sbin/rolloutd|$X/usr/sbin/rolloutd|g" -e "s|/etc/rolloutd/rolloutd.conf|$CONF|g" \
    "$X/lib/systemd/system/rolloutd.service" >"$WORK/rolloutd.service"
  verify_unit() {
    local out; out=$(MANPATH="$X/usr/share/man" systemd-analyze verify "$WORK/rolloutd.service" 2>&1)
    local rc=$?
    [ $rc = 0 ] && [ -z "$out" ] || { echo "$out"; return 1; }
  }
  check "systemd-analyze verify rolloutd.service: no findings" verify_unit
  exposure() {
    local out; out=$(systemd-analyze security --offline=true --no-pager "$WORK/rolloutd.service" 2>&1) || { echo "$out"; return 1; }
    local level; level=$(sed -n 's/.*Overall exposure level for rolloutd.service: \([0-9.]*\).*/\1/p' <<<"$out")
    echo "exposure $level"
    awk -v l="$level" 'BEGIN { exit !(l != "" && l + 0 <= 2.0) }'
  }
  if out=$(exposure 2>&1); then ok "systemd-analyze security: $(tail -1 <<<"$out") (at most 2.0)"; else bad "systemd-analyze security: exposure at most 2.0" "$out"; fi
else
  skip "systemd-analyze verify (no systemd-analyze; package systemd)"
fi

# ---- maintainer scripts -----------------------------------------------------------------------
scripts_syntax() {
  local s rc=0
  for s in postinst prerm postrm; do
    dpkg-deb --ctrl-tarfile "$DEB" | tar -xO "./$s" >"$WORK/$s" || return 1
    sh -n "$WORK/$s" || rc=1
    head -1 "$WORK/$s" | grep -qx '#!/bin/sh' || { echo "$s: not #!/bin/sh"; rc=1; }
  done
  return $rc
}
check "maintainer scripts: POSIX sh syntax" scripts_syntax

# postinst and postrm run with the commands they call replaced by stubs that log their
# arguments: what they would do to a machine, without doing it.
mkdir -p "$WORK/stubs"
for c in adduser addgroup getent dpkg-statoverride chown chmod systemctl rm rmdir; do
  cat >"$WORK/stubs/$c" <<EOF
#!/bin/sh
echo "$c \$*" >>"$WORK/calls"
[ "$c" = getent ] && exit 2
exit 0
EOF
  chmod +x "$WORK/stubs/$c"
done
postinst_creates_user() {
  : >"$WORK/calls"
  PATH="$WORK/stubs:$PATH" sh "$WORK/postinst" configure "" || { echo "postinst configure failed"; return 1; }
  grep -qx 'adduser --quiet --system --group --no-create-home --home /nonexistent --shell /usr/sbin/nologin --gecos rolloutd service rolloutd' "$WORK/calls" ||
    { echo "no adduser call as expected:"; cat "$WORK/calls"; return 1; }
  PATH="$WORK/stubs:$PATH" sh "$WORK/postinst" abort-upgrade 0.0.1 || return 1
  ! PATH="$WORK/stubs:$PATH" sh "$WORK/postinst" bogus 2>/dev/null || { echo "postinst accepted an unknown action"; return 1; }
}
check "postinst configure: creates the system user rolloutd (adduser --system --group, home /nonexistent)" postinst_creates_user
postrm_purges() {
  : >"$WORK/calls"
  PATH="$WORK/stubs:$PATH" sh "$WORK/postrm" purge || { echo "postrm purge failed"; return 1; }
  grep -q '^rm -f /etc/rolloutd/rolloutd.conf ' "$WORK/calls" && grep -q '^rmdir .*/etc/rolloutd$' "$WORK/calls" ||
    { echo "purge does not clean /etc/rolloutd:"; cat "$WORK/calls"; return 1; }
  PATH="$WORK/stubs:$PATH" sh "$WORK/postrm" remove || return 1
  PATH="$WORK/stubs:$PATH" sh "$WORK/prerm" remove || return 1
}
check "postrm purge: removes /etc/rolloutd's leftovers; remove and prerm remove succeed" postrm_purges

# ---- alert rules ------------------------------------------------------------------------------
if command -v promtool >/dev/null; then
  check "promtool check rules packaging/rolloutd-alerts.yml" promtool check rules "$ROOT/packaging/rolloutd-alerts.yml"
  check "promtool test rules tests/package/alerts.test.yml (each alert fires when it should, not before)" \
    promtool test rules "$HERE/alerts.test.yml"
  alert_metrics_exist() { # every rolloutd_* name in the rules is one the daemon exports
    local m rc=0
    for m in $(grep -o 'rolloutd_[a-z0-9_]*' "$ROOT/packaging/rolloutd-alerts.yml" | sort -u); do
      grep -rqF "\"$m" "$ROOT/daemon/src" || { echo "$m is not a metric of rolloutd"; rc=1; }
    done
    return $rc
  }
  check "alert rules use only metric names rolloutd exports" alert_metrics_exist
else
  skip "promtool check/test rules (no promtool; package prometheus)"
fi

# ---- lintian ----------------------------------------------------------------------------------
if command -v lintian >/dev/null; then
  lintian --pedantic --info "$DEB" >"$WORK/lintian.txt" 2>&1
  grep -vE '^(running with root privileges|N:)' "$WORK/lintian.txt" | sed 's/^/        lintian: /'
  if grep -q '^E: ' "$WORK/lintian.txt"; then
    bad "lintian: no errors"
  else
    ok "lintian: no errors ($(grep -c '^W: ' "$WORK/lintian.txt") warnings, shown above)"
  fi
else
  skip "lintian (not installed)"
fi

# ---- the unpacked daemon against a real PostgreSQL -------------------------------------------
if [ -n "${ROLLOUT_TEST_PGHOST:-}" ] && [ -n "${ROLLOUT_TEST_PGPORT:-}" ]; then
  PGH=$ROLLOUT_TEST_PGHOST PGP=$ROLLOUT_TEST_PGPORT
  DB=rollout_pkgtest DB_EMPTY=rollout_pkgtest_empty
  psql_super() { PGOPTIONS='-c client_min_messages=warning' psql -X -q -v ON_ERROR_STOP=1 -h "$PGH" -p "$PGP" -U postgres "$@"; }
  db_fresh() {
    psql_super -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB" \
      -c "DROP DATABASE IF EXISTS $DB_EMPTY WITH (FORCE)" -c "CREATE DATABASE $DB_EMPTY" >/dev/null
  }
  migrate() {
    "$CTL" --db "host=$PGH port=$PGP dbname=$DB user=postgres" --schema-dir "$X/usr/share/rolloutd/schema" migrate &&
      "$CTL" --db "host=$PGH port=$PGP dbname=$DB user=postgres" --schema-dir "$X/usr/share/rolloutd/schema" migrate --status |
        grep -q "$(basename "$(ls "$X"/usr/share/rolloutd/schema/*.sql | tail -1)" .sql)" &&
      psql_super -d "$DB" >/dev/null <<'EOF'
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'rolloutd') THEN
    CREATE ROLE rolloutd LOGIN IN ROLE rollout_service;
  END IF;
END $$;
EOF
  }
  if db_fresh && out=$(migrate 2>&1); then
    ok "unpacked rolloutctl migrates a scratch database from the unpacked schema directory"
    # the installed configuration with conninfo pointed at the scratch database, port 0 (free)
    sed -e "s|^  conninfo = .*|  conninfo = \"host=$PGH port=$PGP dbname=$DB user=rolloutd\";|" \
      -e 's|^  port = 8080;|  port = 0;|' "$CONF" >"$WORK/rolloutd.conf"
    # a stand-in for systemd's notify socket: every datagram, one line per field
    perl -MIO::Socket::UNIX -e '
      $| = 1;
      my $s = IO::Socket::UNIX->new(Type => SOCK_DGRAM(), Local => $ARGV[0]) or die "socket: $!";
      open(my $out, ">>", $ARGV[1]) or die; $out->autoflush(1);
      while (defined $s->recv(my $msg, 4096)) { print $out "$msg\n"; }
    ' "$WORK/notify.sock" "$WORK/notify.log" &
    LISTENER_PID=$!
    for _ in $(seq 50); do [ -S "$WORK/notify.sock" ] && break; sleep 0.1; done
    NOTIFY_SOCKET="$WORK/notify.sock" WATCHDOG_USEC=1000000 "$RD" --config "$WORK/rolloutd.conf" \
      >"$WORK/rolloutd.log" 2>&1 &
    DAEMON_PID=$!
    wait_for() { # PATTERN FILE SECONDS
      local _
      for _ in $(seq $(($3 * 10))); do grep -q "$1" "$2" 2>/dev/null && return 0; sleep 0.1; done
      return 1
    }
    if wait_for '^READY=1' "$WORK/notify.log" 15; then
      ok "sd_notify: READY=1 once listening with the database reachable"
    else
      bad "sd_notify: READY=1" "$(cat "$WORK/rolloutd.log" "$WORK/notify.log" 2>/dev/null | tail -20)"
    fi
    PORT=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$WORK/rolloutd.log" | head -1)
    # READY=1 comes with the first database connection; /readyz also waits for the schema
    # check that this connection runs next, a few milliseconds later.
    ready=
    for _ in $(seq 30); do
      [ -n "$PORT" ] && curl -fsS -o "$WORK/readyz.json" "http://127.0.0.1:$PORT/readyz" 2>/dev/null && { ready=1; break; }
      sleep 0.1
    done
    if [ -n "$ready" ]; then
      ok "GET /readyz answers 200 on port $PORT: $(tr -d '\n ' <"$WORK/readyz.json" | cut -c1-100)"
    else
      bad "GET /readyz answers 200 within 3 s of READY=1" "$(tail -5 "$WORK/rolloutd.log")"
    fi
    if grep -q '^STATUS=serving, [0-9]*/4 database connections, queue 0' "$WORK/notify.log"; then
      ok "sd_notify: STATUS=$(grep -m1 '^STATUS=' "$WORK/notify.log" | cut -d= -f2-)"
    else
      bad "sd_notify: STATUS= line" "$(cat "$WORK/notify.log")"
    fi
    if wait_for '^WATCHDOG=1' "$WORK/notify.log" 3; then
      ok "sd_notify: WATCHDOG=1 at half of WATCHDOG_USEC"
    else
      bad "sd_notify: WATCHDOG=1" "$(cat "$WORK/notify.log")"
    fi
    kill -HUP "$DAEMON_PID"
    if wait_for 'SIGHUP: configuration reloaded' "$WORK/rolloutd.log" 5; then
      ok "SIGHUP reloads the configuration"
    else
      bad "SIGHUP reloads the configuration" "$(tail -5 "$WORK/rolloutd.log")"
    fi
    kill -TERM "$DAEMON_PID"
    rc=0
    for _ in $(seq 100); do kill -0 "$DAEMON_PID" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$DAEMON_PID" 2>/dev/null; then
      bad "SIGTERM: stops within 10 s"
    else
      wait "$DAEMON_PID"; rc=$?
      if [ $rc = 0 ] && grep -q '^STOPPING=1' "$WORK/notify.log"; then
        ok "SIGTERM: STOPPING=1, drained, exit 0"
      else
        bad "SIGTERM: STOPPING=1 and exit 0 (exit $rc)" "$(tail -5 "$WORK/rolloutd.log"; cat "$WORK/notify.log")"
      fi
    fi
    DAEMON_PID=
    # a database without rolloutd's schema: refuse to start with EX_CONFIG, which the unit's
    # RestartPreventExitStatus= does not restart
    sed -i "s|dbname=$DB |dbname=$DB_EMPTY |" "$WORK/rolloutd.conf"
    timeout 30 "$RD" --config "$WORK/rolloutd.conf" >"$WORK/rolloutd-empty.log" 2>&1
    rc=$?
    if [ $rc = 78 ] && grep -q 'rolloutctl migrate' "$WORK/rolloutd-empty.log"; then
      ok "a database without the schema: exit 78 and a hint to run rolloutctl migrate"
    else
      bad "a database without the schema: exit 78 (exit $rc)" "$(tail -5 "$WORK/rolloutd-empty.log")"
    fi
  else
    bad "unpacked rolloutctl migrates a scratch database" "$out"
  fi
  psql_super -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" \
    -c "DROP DATABASE IF EXISTS $DB_EMPTY WITH (FORCE)" >/dev/null 2>&1
else
  skip "the unpacked rolloutd against PostgreSQL, sd_notify (set ROLLOUT_TEST_PGHOST and ROLLOUT_TEST_PGPORT)"
fi

# ---- a real install on this machine (opt-in) --------------------------------------------------
if [ "${ROLLOUT_PACKAGE_INSTALL:-0}" = 1 ]; then
  if dpkg-query -W -f='${Status}' rolloutd 2>/dev/null | grep -q 'installed'; then
    skip "dpkg -i on this machine: a rolloutd package is already installed here"
  elif [ "$(id -u)" != 0 ]; then
    skip "dpkg -i on this machine: needs root"
  else
    had_user=0; getent passwd rolloutd >/dev/null && had_user=1
    real_install() {
      dpkg -i "$DEB" >"$WORK/dpkg.log" 2>&1 || { cat "$WORK/dpkg.log"; return 1; }
      getent passwd rolloutd | grep -q ':/nonexistent:/usr/sbin/nologin$' || { echo "user: $(getent passwd rolloutd)"; return 1; }
      getent group rolloutd >/dev/null || { echo "no group rolloutd"; return 1; }
      [ "$(stat -c '%a %U:%G' /etc/rolloutd/rolloutd.conf)" = "640 root:rolloutd" ] ||
        { echo "conf: $(stat -c '%a %U:%G' /etc/rolloutd/rolloutd.conf)"; return 1; }
      /usr/sbin/rolloutd --check-config || return 1
      runuser -u rolloutd -- /usr/sbin/rolloutd --check-config || { echo "rolloutd cannot read its configuration"; return 1; }
      man -w rolloutd >/dev/null && man -w rolloutctl >/dev/null || { echo "man pages not found"; return 1; }
      # an edited conffile survives removal; purge takes it and the directory
      echo "# local change" >>/etc/rolloutd/rolloutd.conf
      dpkg -r rolloutd >>"$WORK/dpkg.log" 2>&1 || { cat "$WORK/dpkg.log"; return 1; }
      [ ! -e /usr/sbin/rolloutd ] && grep -q '^# local change' /etc/rolloutd/rolloutd.conf ||
        { echo "after dpkg -r: binary still there or the edited conffile gone"; return 1; }
      dpkg -P rolloutd >>"$WORK/dpkg.log" 2>&1 || { cat "$WORK/dpkg.log"; return 1; }
      [ ! -e /etc/rolloutd ] || { echo "after dpkg -P: /etc/rolloutd is still there"; ls -la /etc/rolloutd; return 1; }
    }
    check "dpkg -i: user rolloutd, conffile 0640 root:rolloutd, man pages; dpkg -r keeps the edited conffile, dpkg -P removes it" real_install
    dpkg -P rolloutd >/dev/null 2>&1 || true
    [ $had_user = 0 ] && getent passwd rolloutd >/dev/null && deluser --quiet --system rolloutd >/dev/null 2>&1 || true
  fi
fi

if [ $skipped -gt 0 ]; then
  echo "$passed passed, $failed failed, $skipped skipped"
else
  echo "$passed passed, $failed failed"
fi
[ $failed = 0 ]
