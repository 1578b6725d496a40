#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh Debian 12 machine, as
# root: PostgreSQL 15, coturn, Caddy, Redis (Synapse's workers), Nix (for
# parsing and evaluating the modules), Python with venv and a C compiler with
# libpq-dev (to build psycopg2), curl, Rust when missing (rustc-web), Node.js
# with npm (the acceptance suite's OpenID Connect provider), bubblewrap and
# stdenv's tools (for scripts/nix-sandbox.sh), Synapse from PyPI (pinned, with
# its postgres, url-preview, oidc and redis extras, plus aiosmtpd, the
# acceptance suite's SMTP server) into a virtual environment at $OSPW_VENV
# (default /opt/ospw-venv), mypy and pyflakes into $OSPW_TOOLS_VENV (default
# /opt/ospw-tools-venv), and Synapse's published config schema into the user's
# cache when ../shared has none (see "Synapse's config schema" below); then
# `npm ci` of tests/acceptance/idp (oidc-provider, into its git-ignored
# node_modules), and checks that every program the tests spawn is on PATH
# (PROGRAMS below; crates/ospw-matrix-cli/tests/test_deps.rs fails when a test
# spawns a program missing from it). Idempotent.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OSPW_VENV=${OSPW_VENV:-/opt/ospw-venv}
# A minimal Debian 12 (e.g. the debian:12 image) has none of python3, venv,
# gcc, curl or procps (`kill`); util-linux (`setpriv`), passwd (`useradd`),
# libc-bin (`getent`) and iproute2 (`ip`, for the network namespaces of the
# TURN relay test) are listed for completeness; systemd for `systemd-analyze`
# and (with coreutils' `df`) `systemctl` for `ospw-matrix doctor`; prometheus
# (`promtool`) for the alert rules of docs/monitoring.md.
# bubblewrap and the rest of the third line: scripts/nix-sandbox.sh (the Nix
# build sandbox: bwrap, and the Debian packages of stdenv's tools, nixpkgs'
# pkgs/stdenv/generic/common-path.nix, with gcc and binutils).
APT_PACKAGES=(postgresql-15 postgresql-client-15 libpq-dev coturn caddy redis-server nix-bin jq
  python3 python3-venv python3-dev gcc libc6-dev curl ca-certificates procps
  util-linux passwd libc-bin iproute2 coreutils systemd prometheus git
  bubblewrap findutils diffutils sed grep gawk tar gzip bzip2 make
  bash patch xz-utils file cpp binutils)
# Every program a test spawns by name (PostgreSQL's own programs are run from
# /usr/lib/postgresql/15/bin and checked there).
PROGRAMS=(turnserver turnutils_uclient turnutils_peer caddy redis-server curl python3 setpriv
  getent useradd id kill sh sleep nix-instantiate jq cargo rustc systemd-analyze ip
  df systemctl promtool node npm bwrap git)
PG_PROGRAMS=(initdb postgres pg_ctl pg_isready psql createdb dropdb pg_dump pg_restore)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "install-test-deps: apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
# Rust: a fresh Debian 12 has none, and bookworm's own rustc (1.63) is too
# old; bookworm-security's rustc-web (1.96 when written) is new enough for the
# workspace (rust-version in Cargo.toml) and the acceptance suite's matrix-sdk
# (1.93). Installed only when no cargo with fmt and clippy of at least
# MIN_RUST is on PATH (e.g. from rustup).
MIN_RUST=1.93
RUST_PACKAGES=(rustc-web cargo-web rustfmt-web rust-web-clippy)
rust_ok() {
  command -v cargo >/dev/null 2>&1 && cargo fmt --version >/dev/null 2>&1 &&
    cargo clippy --version >/dev/null 2>&1 &&
    dpkg --compare-versions "$(rustc --version | awk '{print $2}')" ge "$MIN_RUST"
}
if ! rust_ok; then
  echo "install-test-deps: apt-get install ${RUST_PACKAGES[*]} (no cargo >= $MIN_RUST with fmt and clippy)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${RUST_PACKAGES[@]}"
  rust_ok || { echo "install-test-deps: still no cargo >= $MIN_RUST with fmt and clippy" >&2; exit 1; }
fi

# Node.js 18 or later with npm for the OpenID Connect provider (oidc-provider
# 8 runs on 18, Debian 12's version; a newer one already installed, e.g.
# from NodeSource, which bundles npm, is kept).
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "install-test-deps: apt-get install nodejs npm"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends nodejs npm
fi
node_major=$(node -p 'process.versions.node.split(".")[0]')
if ((node_major < 18)); then
  echo "install-test-deps: node $(node --version) is older than 18" >&2
  exit 1
fi

# The Debian packages start their services; the tests start their own
# instances on other ports and directories, so stop the system ones.
for svc in coturn caddy postgresql redis-server; do
  systemctl stop "$svc" >/dev/null 2>&1 || service "$svc" stop >/dev/null 2>&1 || true
done

# Synapse, pinned: the tests run its own config loader, and the schema below
# is Synapse's at this release, checked by SHA-256. To move to another
# release, change all three (the hashes of schema/synapse-config.schema.yaml
# and schema/v1/meta.schema.json at the tag v$SYNAPSE_VERSION). An existing
# venv with another Synapse is kept (other checkouts may be using it);
# OSPW_SYNAPSE_REINSTALL=1 installs the pinned one into it.
SYNAPSE_VERSION=1.157.1
SYNAPSE_SCHEMA_SHA256=cd8f3661f67ac69e8c544f3e012757295316b687a8e5da0a8318fa273f29e832
SYNAPSE_META_SCHEMA_SHA256=d974684a54a693a60cbdcfbae2c6a22ccdf683c6942cccfcd38f0aa6ead8d050
# Synapse with every requirement of the extras the tests use (as its own
# metadata lists them), jsonschema, and aiosmtpd (the acceptance suite's
# SMTP server).
SYNAPSE_EXTRAS=postgres,url-preview,oidc,redis
# Versions of Synapse's requirements that its metadata does not exclude but
# that break it: txredisapi 1.6.0 fails every Redis connection over a Unix
# socket (`AttributeError: 'super' object has no attribute
# 'startedConnecting'`, so no process starts with workers); Synapse's later
# releases declare txredisapi<1.6.0 themselves.
SYNAPSE_CONSTRAINTS=("txredisapi<1.6.0")
synapse_complete() {
  "$OSPW_VENV/bin/python" - "$SYNAPSE_EXTRAS" "${SYNAPSE_CONSTRAINTS[@]}" >/dev/null 2>&1 <<'PY'
import importlib.metadata as m, sys
import synapse, psycopg2, jsonschema, aiosmtpd
from pip._vendor.packaging.requirements import Requirement
extras = sys.argv[1].split(",")
for text in m.requires("matrix-synapse") or []:
    req = Requirement(text)
    if req.marker and any(req.marker.evaluate({"extra": e}) for e in extras):
        m.version(req.name)
for text in sys.argv[2:]:
    req = Requirement(text)
    if m.version(req.name) not in req.specifier:
        sys.exit(f"{req.name} {m.version(req.name)} is not {req.specifier}")
PY
}
if ! "$OSPW_VENV/bin/python" -c 'import synapse' >/dev/null 2>&1 || [ "${OSPW_SYNAPSE_REINSTALL:-}" = 1 ]; then
  echo "install-test-deps: installing matrix-synapse[$SYNAPSE_EXTRAS]==$SYNAPSE_VERSION into $OSPW_VENV"
  python3 -m venv "$OSPW_VENV"
  "$OSPW_VENV/bin/pip" install -q --upgrade pip
  "$OSPW_VENV/bin/pip" install -q "matrix-synapse[$SYNAPSE_EXTRAS]==$SYNAPSE_VERSION" "${SYNAPSE_CONSTRAINTS[@]}" jsonschema aiosmtpd
elif ! synapse_complete; then
  # A venv made before an extra was tested (e.g. oidc, for single sign-on,
  # or redis, for Synapse's workers), or holding a version the constraints
  # exclude: add or change what is needed, keeping the installed Synapse.
  synapse_version=$("$OSPW_VENV/bin/python" -c 'import synapse; print(synapse.__version__)')
  echo "install-test-deps: adding matrix-synapse[$SYNAPSE_EXTRAS]==$synapse_version, ${SYNAPSE_CONSTRAINTS[*]}, jsonschema and aiosmtpd to $OSPW_VENV"
  "$OSPW_VENV/bin/pip" install -q "matrix-synapse[$SYNAPSE_EXTRAS]==$synapse_version" "${SYNAPSE_CONSTRAINTS[@]}" jsonschema aiosmtpd
fi
synapse_installed=$("$OSPW_VENV/bin/python" -c 'import synapse; print(synapse.__version__)')
echo "install-test-deps: Synapse $synapse_installed in $OSPW_VENV"
if [ "$synapse_installed" != "$SYNAPSE_VERSION" ]; then
  echo "install-test-deps: note: the pinned Synapse is $SYNAPSE_VERSION (OSPW_SYNAPSE_REINSTALL=1 installs it)"
fi

# Synapse's config schema, for the tests that check every key the emitter
# writes against it (crates/ospw-matrix-cli/tests/support/mod.rs,
# synapse_schema_dir: OSPW_SYNAPSE_SCHEMA_DIR, then ../shared/reference/
# synapse-schema beside the checkout, then this cache). Downloaded from
# Synapse's repository at the installed release's tag and checked against the
# pinned SHA-256; never into the repository. A failure here is not fatal:
# the schema tests then fail naming the file and how to get it.
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
schema_cache=${XDG_CACHE_HOME:-$HOME/.cache}/ospw-matrix/synapse-schema
fetch_synapse_schema() {
  if [ -n "${OSPW_SYNAPSE_SCHEMA_DIR:-}" ]; then
    echo "install-test-deps: Synapse's config schema from OSPW_SYNAPSE_SCHEMA_DIR=$OSPW_SYNAPSE_SCHEMA_DIR"
    return 0
  fi
  if [ -f "$repo_root/../shared/reference/synapse-schema/synapse-config.schema.yaml" ]; then
    echo "install-test-deps: Synapse's config schema from ../shared/reference/synapse-schema"
    return 0
  fi
  if [ "$synapse_installed" != "$SYNAPSE_VERSION" ]; then
    echo "install-test-deps: WARNING: no pinned SHA-256 of the config schema of Synapse $synapse_installed (only of $SYNAPSE_VERSION): not downloaded; the Synapse schema tests will fail (install the pinned Synapse with OSPW_SYNAPSE_REINSTALL=1, or set OSPW_SYNAPSE_SCHEMA_DIR)" >&2
    return 1
  fi
  if [ "$(cat "$schema_cache/VERSION" 2>/dev/null)" = "$SYNAPSE_VERSION" ] &&
    echo "$SYNAPSE_SCHEMA_SHA256  $schema_cache/synapse-config.schema.yaml" | sha256sum -c --status 2>/dev/null &&
    echo "$SYNAPSE_META_SCHEMA_SHA256  $schema_cache/v1/meta.schema.json" | sha256sum -c --status 2>/dev/null; then
    echo "install-test-deps: Synapse $SYNAPSE_VERSION's config schema in $schema_cache"
    return 0
  fi
  local base="https://raw.githubusercontent.com/element-hq/synapse/v$SYNAPSE_VERSION/schema"
  local tmp
  tmp=$(mktemp -d)
  mkdir -p "$tmp/v1"
  local file sum
  for file in synapse-config.schema.yaml v1/meta.schema.json; do
    sum=$SYNAPSE_SCHEMA_SHA256
    [ "$file" = v1/meta.schema.json ] && sum=$SYNAPSE_META_SCHEMA_SHA256
    if ! curl -fsSL --connect-timeout 20 --max-time 120 -o "$tmp/$file" "$base/$file"; then
      echo "install-test-deps: WARNING: could not download $base/$file; the Synapse schema tests will fail until it is in $schema_cache (or OSPW_SYNAPSE_SCHEMA_DIR names a directory holding it)" >&2
      rm -rf "$tmp"
      return 1
    fi
    if ! echo "$sum  $tmp/$file" | sha256sum -c --status; then
      echo "install-test-deps: WARNING: $base/$file does not have the pinned SHA-256 $sum: not used" >&2
      rm -rf "$tmp"
      return 1
    fi
  done
  echo "$SYNAPSE_VERSION" >"$tmp/VERSION"
  mkdir -p "$(dirname "$schema_cache")"
  rm -rf "$schema_cache"
  mv "$tmp" "$schema_cache"
  chmod -R a+rX "$schema_cache"
  echo "install-test-deps: downloaded Synapse $SYNAPSE_VERSION's config schema into $schema_cache"
}
fetch_synapse_schema || true

# mypy and pyflakes, pinned, for scripts/nix-sandbox.sh, which checks the VM
# test scripts with them as nixpkgs' test driver does.
OSPW_TOOLS_VENV=${OSPW_TOOLS_VENV:-/opt/ospw-tools-venv}
TOOLS_PIP=(mypy==1.18.2 pyflakes==3.4.0)
tools_installed=$("$OSPW_TOOLS_VENV/bin/python" -m pip freeze 2>/dev/null || true)
tools_missing=0
for req in "${TOOLS_PIP[@]}"; do
  grep -qx -- "$req" <<<"$tools_installed" || tools_missing=1
done
if ((tools_missing)); then
  echo "install-test-deps: installing ${TOOLS_PIP[*]} into $OSPW_TOOLS_VENV"
  python3 -m venv "$OSPW_TOOLS_VENV"
  "$OSPW_TOOLS_VENV/bin/pip" install -q "${TOOLS_PIP[@]}"
fi

# The acceptance suite (scripts/acceptance.sh) runs PostgreSQL, Synapse,
# coturn and Caddy as this unprivileged system user (PostgreSQL refuses to run
# as root; Caddy as root would try to install its local CA into the system
# trust store). With peer authentication the database role has the same name,
# hence the underscore (the CLI accepts plain PostgreSQL identifiers only).
OSPW_TEST_USER=${OSPW_TEST_USER:-ospw_test}
if ! id -u "$OSPW_TEST_USER" >/dev/null 2>&1; then
  echo "install-test-deps: creating system user $OSPW_TEST_USER"
  useradd --system --user-group --no-create-home --home-dir /nonexistent \
    --shell /usr/sbin/nologin "$OSPW_TEST_USER"
fi

# The acceptance suite's OpenID Connect provider: oidc-provider (a certified
# implementation) and jose, exactly as package-lock.json pins them, into
# tests/acceptance/idp/node_modules (git-ignored).
idp="$repo/tests/acceptance/idp"
lock_sum=$(sha256sum "$idp/package-lock.json" | cut -d' ' -f1)
if [ "$(cat "$idp/node_modules/.ospw-lock-sha256" 2>/dev/null)" != "$lock_sum" ]; then
  echo "install-test-deps: npm ci in tests/acceptance/idp"
  (cd "$idp" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$lock_sum" > "$idp/node_modules/.ospw-lock-sha256"
fi

missing=()
for prog in "${PROGRAMS[@]}"; do
  command -v "$prog" >/dev/null 2>&1 || missing+=("$prog")
done
for prog in "${PG_PROGRAMS[@]}"; do
  [ -x "/usr/lib/postgresql/15/bin/$prog" ] || missing+=("/usr/lib/postgresql/15/bin/$prog")
done
for prog in mypy pyflakes; do
  [ -x "$OSPW_TOOLS_VENV/bin/$prog" ] || missing+=("$OSPW_TOOLS_VENV/bin/$prog")
done
if ((${#missing[@]})); then
  echo "install-test-deps: still missing after installing: ${missing[*]}" >&2
  exit 1
fi
echo "install-test-deps: every program the tests spawn is installed"
