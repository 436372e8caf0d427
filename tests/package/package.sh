#!/usr/bin/env bash
# tests/package/package.sh ROOT: builds the Debian package of the checkout ROOT in
# ROOT/build-package and prints the .deb's path (alone on stdout; progress on stderr).
# `tools/dev package` calls it; tests/package/test.sh too (with BUILD_DIR set to its own dir).
#
#   BUILD_DIR=DIR   build there instead of ROOT/build-package
#
# Needs cmake, a C compiler, the -dev packages of tools/dev, dpkg-dev (dpkg-shlibdeps computes
# Depends, dpkg-buildflags the hardening flags) and file (CPack finds the ELF files with it).
set -euo pipefail

ROOT=$(cd "${1:?usage: tests/package/package.sh ROOT}" && pwd)
BUILD=${BUILD_DIR:-$ROOT/build-package}
JOBS=$(nproc 2>/dev/null || echo 2)

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'package.sh: %s\n' "$*" >&2; exit 1; }

for tool in cmake cpack dpkg-deb dpkg-shlibdeps dpkg-buildflags file gzip; do
  command -v "$tool" >/dev/null || die "$tool is missing (packages: cmake dpkg-dev file gzip)"
done

# Debian's hardening flags (stack protector, _FORTIFY_SOURCE, full RELRO with BIND_NOW), as a
# package built by debhelper would have them. The project's -Wall -Wextra -Werror stay.
export DEB_BUILD_MAINT_OPTIONS=hardening=+all
CFLAGS="$(dpkg-buildflags --get CPPFLAGS) $(dpkg-buildflags --get CFLAGS)"
LDFLAGS=$(dpkg-buildflags --get LDFLAGS)

mkdir -p "$BUILD"
say "configuring $BUILD"
cmake -S "$ROOT" -B "$BUILD" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DROLLOUT_TESTS=OFF \
  -DROLLOUT_SCHEMA_DIR=/usr/share/rolloutd/schema \
  -DCMAKE_INSTALL_PREFIX=/usr \
  "-DCMAKE_C_FLAGS=$CFLAGS" \
  "-DCMAKE_EXE_LINKER_FLAGS=$LDFLAGS" >"$BUILD/package-configure.log" 2>&1 ||
  { cat "$BUILD/package-configure.log" >&2; die "cmake configure failed"; }

say "building"
cmake --build "$BUILD" -j "$JOBS" >"$BUILD/package-build.log" 2>&1 ||
  { tail -40 "$BUILD/package-build.log" >&2; die "build failed (log: $BUILD/package-build.log)"; }

say "cpack -G DEB"
rm -f "$BUILD"/rolloutd_*.deb "$BUILD"/rolloutd-dbgsym_*.ddeb
(cd "$BUILD" && cpack -G DEB) >"$BUILD/package-cpack.log" 2>&1 ||
  { cat "$BUILD/package-cpack.log" >&2; die "cpack failed (log: $BUILD/package-cpack.log)"; }

shopt -s nullglob
debs=("$BUILD"/rolloutd_*.deb)
[ ${#debs[@]} = 1 ] || die "expected one rolloutd_*.deb in $BUILD, found ${#debs[@]}"
for d in "$BUILD"/rolloutd-dbgsym_*.ddeb; do say "debug symbols: $d"; done
printf '%s\n' "${debs[0]}"
