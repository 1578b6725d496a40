#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh Debian 12 machine, as
# root: PostgreSQL 15, coturn, Caddy, Nix (for parsing and evaluating the
# modules), Python with venv and a C compiler with libpq-dev (to build
# psycopg2), curl, Rust when missing (rustc-web), Node.js with npm (the
# acceptance suite's OpenID Connect provider), and Synapse from PyPI (with
# its postgres, url-preview and oidc extras, plus aiosmtpd, the acceptance
# suite's SMTP server) into a virtual environment at $OSPW_VENV (default
# /opt/ospw-venv); then `npm ci` of tests/acceptance/idp (oidc-provider, into
# its git-ignored node_modules), and checks that every program the tests
# spawn is on PATH (PROGRAMS below; crates/ospw-matrix-cli/tests/
# test_deps.rs fails when a test spawns a program missing from it). Idempotent.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OSPW_VENV=${OSPW_VENV:-/opt/ospw-venv}
# A minimal Debian 12 (e.g. the debian:12 image) has none of python3, venv,
# gcc, curl or procps (`kill`); util-linux (`setpriv`), passwd (`useradd`),
# libc-bin (`getent`) and iproute2 (`ip`, for the network namespaces of the
# TURN relay test) are listed for completeness; systemd for `systemd-analyze`
# and (with coreutils' `df`) `systemctl` for `ospw-matrix doctor`; prometheus
# (`promtool`) for the alert rules of docs/monitoring.md.
APT_PACKAGES=(postgresql-15 postgresql-client-15 libpq-dev coturn caddy nix-bin jq
  python3 python3-venv python3-dev gcc libc6-dev curl ca-certificates procps
  util-linux passwd libc-bin iproute2 coreutils systemd prometheus)
# Every program a test spawns by name (PostgreSQL's own programs are run from
# /usr/lib/postgresql/15/bin and checked there).
PROGRAMS=(turnserver turnutils_uclient turnutils_peer caddy curl python3 setpriv
  getent useradd id kill sh sleep nix-instantiate jq cargo rustc systemd-analyze ip
  df systemctl promtool node npm)
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
for svc in coturn caddy postgresql; do
  systemctl stop "$svc" >/dev/null 2>&1 || service "$svc" stop >/dev/null 2>&1 || true
done

if ! "$OSPW_VENV/bin/python" -c 'import synapse, psycopg2, jsonschema, bs4' >/dev/null 2>&1; then
  echo "install-test-deps: creating $OSPW_VENV with matrix-synapse[postgres,url-preview,oidc]"
  python3 -m venv "$OSPW_VENV"
  "$OSPW_VENV/bin/pip" install -q --upgrade pip
  "$OSPW_VENV/bin/pip" install -q 'matrix-synapse[postgres,url-preview,oidc]' jsonschema aiosmtpd
fi
# A venv made before single sign-on and mail were tested: add Synapse's oidc
# extra (authlib) and the SMTP server, keeping the installed Synapse.
if ! "$OSPW_VENV/bin/python" -c 'import authlib, aiosmtpd' >/dev/null 2>&1; then
  synapse_version=$("$OSPW_VENV/bin/python" -c 'import synapse; print(synapse.__version__)')
  echo "install-test-deps: adding matrix-synapse[oidc]==$synapse_version and aiosmtpd to $OSPW_VENV"
  "$OSPW_VENV/bin/pip" install -q "matrix-synapse[postgres,url-preview,oidc]==$synapse_version" aiosmtpd
fi
echo "install-test-deps: Synapse $("$OSPW_VENV/bin/python" -c 'import synapse; print(synapse.__version__)') in $OSPW_VENV"

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
if ((${#missing[@]})); then
  echo "install-test-deps: still missing after installing: ${missing[*]}" >&2
  exit 1
fi
echo "install-test-deps: every program the tests spawn is installed"
