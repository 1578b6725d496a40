#!/usr/bin/env bash
# Simulates, with bubblewrap, the parts of `nixos-rebuild switch` and `nix
# flake check` that run inside the Nix build sandbox and cannot run here for
# real (Debian's nix-bin cannot build):
#
#  1. the package's build and check phases (nix/package.nix, as
#     rustPlatform.buildRustPackage runs them): only the files of the
#     recipe's lib.fileset that git tracks (a flake's source), the
#     dependencies vendored beforehand (`cargo vendor --locked`) and
#     configured in the source's .cargo/config.toml, an unprivileged build
#     user, HOME=/homeless-shelter, no network, no /usr, /opt or /usr/local
#     programs: PATH holds exactly stdenv's tools (nixpkgs'
#     pkgs/stdenv/generic/common-path.nix, taken from the matching Debian
#     packages), cc and binutils, and the Rust toolchain (mounted read-only);
#     then `cargo build` and `cargo test` with the recipe's flags
#     (cargoBuildFlags, cargoTestFlags, checkFlags, preCheck), release
#     profile, --offline --frozen, as nixpkgs' cargo build and check hooks;
#  2. the render derivation of modules/host-description.nix, for the host
#     description of every node of every VM test (checks/*.nix) and for an
#     invalid one: its own build script, run as the build user with the
#     package just built, `$out` in a store directory like the sandbox's
#     (root-owned, mode 1775, the build user's group): it must succeed (or
#     fail naming the option) and write nothing in the store but `$out`;
#  3. the VM test scripts, type-checked with mypy and linted with pyflakes
#     as nixpkgs' test driver does before it runs them
#     (nixos/lib/testing/driver.nix), against the typed stub of the driver
#     in checks/typing/;
#  4. the flake's module-eval check on its own source: checks/eval/run.sh on
#     a copy of only the files of that check's lib.fileset (flake.nix), with
#     a private Nix state, as the check's derivation runs it.
#
# Parts 2 to 4 evaluate the module (checks/eval) and need nixpkgs' lib
# (NIXPKGS_LIB or the cache location of nix/nixpkgs-lib.sh); without it they
# print SKIPPED and why. Part 1 reads the recipe with nixpkgs' lib when it is
# there and with a stand-in otherwise (scripts/nix-sandbox/recipe.nix).
#
# Run it as root (it creates the build user's files and drops to that user
# inside the sandbox). Needs bwrap (Debian's bubblewrap), setpriv, jq,
# nix-instantiate, cargo and, for part 3, mypy and pyflakes in
# $OSPW_TOOLS_VENV (default /opt/ospw-tools-venv); scripts/install-test-deps.sh
# installs them. Prints `N passed, N failed` and exits 1 when anything
# failed.
#
# One deviation from the hooks' flags: `cargo test --no-fail-fast`, so that
# one run reports every failing test binary (the build fails either way).
#
# Environment: NIX_BUILD_CORES (default: the number of CPUs),
# OSPW_NIX_SANDBOX_KEEP=1 keeps the work directory, OSPW_NIX_SANDBOX_PARTS
# (default "package render module-eval typecheck") selects parts, and
# OSPW_NIX_SANDBOX_TARGET_DIR=DIR (for development, not CI) keeps cargo's
# target directory there between runs instead of building from scratch.
set -uo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
here=$repo/scripts/nix-sandbox
cd "$repo" || exit 1
# shellcheck source=../nix/nixpkgs-lib.sh
. "$repo/nix/nixpkgs-lib.sh"

passed=0 failed=0
pass() { passed=$((passed + 1)); echo "PASS $1"; }
fail() {
  failed=$((failed + 1))
  echo "FAIL $1"
  if [ -n "${2:-}" ]; then printf '%s\n' "$2" | tail -n 60 | sed 's/^/     /'; fi
}
finish() {
  echo "nix-sandbox: $passed passed, $failed failed"
  [ "$failed" -eq 0 ]
  exit
}
parts=" ${OSPW_NIX_SANDBOX_PARTS:-package render module-eval typecheck} "
want() { [[ $parts == *" $1 "* ]]; }

# --- Requirements ----------------------------------------------------------

missing=()
for prog in bwrap setpriv jq nix-instantiate cargo rustc git dpkg-query; do
  command -v "$prog" >/dev/null 2>&1 || missing+=("$prog")
done
if ((${#missing[@]})); then
  fail "requirements" "not installed: ${missing[*]} (scripts/install-test-deps.sh installs them)"
  finish
fi
if [ "$(id -u)" != 0 ]; then
  fail "requirements" "run as root: the simulation creates the build user's files and drops to that user inside the sandbox"
  finish
fi

lib_status=0
nixpkgs_lib_find || lib_status=$?
if ((lib_status == 2)); then
  fail "nixpkgs' lib" "$NIXPKGS_LIB_MISSING"
  finish
fi

# nix-instantiate ARGS: standard output only; standard error (Debian's
# nixbld warning, traces) goes to $errfile, shown with a failure.
work=$(mktemp -d "${TMPDIR:-/tmp}/ospw-nix-sandbox.XXXXXX")
chmod 755 "$work"
errfile=$work/nix-errors
cleanup() {
  if [ "${OSPW_NIX_SANDBOX_KEEP:-}" = 1 ]; then
    echo "nix-sandbox: kept $work"
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT
nixi() { nix-instantiate "$@" 2>"$errfile"; }

# --- The build user -------------------------------------------------------
# Like Nix's nixbld1 in the nixbld group: ids no account or group of this
# machine uses, so the build owns nothing but what the simulation gives it.
build_uid='' build_gid=''
for id in $(seq 30001 30999); do
  if ! getent passwd "$id" >/dev/null; then
    build_uid=$id
    break
  fi
done
for id in $(seq 30000 30999); do
  if ! getent group "$id" >/dev/null; then
    build_gid=$id
    break
  fi
done
if [ -z "$build_uid" ] || [ -z "$build_gid" ]; then
  fail "requirements" "no free user and group id in 30000-30999 for the build user"
  finish
fi

# --- The sandbox's programs -------------------------------------------------
# stdenv's PATH (nixpkgs pkgs/stdenv/generic/common-path.nix) as Debian
# packages, plus stdenv's cc-wrapper and binutils. The PATH directory holds
# links to the programs of these packages, which are mounted read-only at
# their own paths (nothing else of /usr/bin is there), as are the shared
# libraries and gcc's own files.
STDENV_PACKAGES=(
  coreutils  # coreutils
  findutils  # findutils
  diffutils  # diffutils
  sed        # gnused
  grep       # gnugrep
  gawk       # gawk
  tar        # gnutar
  gzip       # gzip
  bzip2      # bzip2.bin
  make       # gnumake
  bash       # bash
  patch      # patch
  xz-utils   # xz.bin
  file       # file
  gcc        # stdenv.cc
  cpp        # stdenv.cc
  binutils   # stdenv.cc.bintools
  binutils-x86-64-linux-gnu
)
# Names nixpkgs' packages have that Debian gives through alternatives.
declare -A STDENV_ALIASES=([awk]=gawk [sh]=bash [cc]=gcc)
# The recipe's nativeCheckInputs (nixpkgs attribute names) the simulation
# can provide, as Debian packages whose programs join the PATH directory
# and whose /usr/lib and /usr/share directories are mounted read-only.
declare -A NATIVE_INPUT_PACKAGES=([util-linux]=util-linux [python3]="python3 python3.11 python3.11-minimal libpython3.11-minimal libpython3.11-stdlib")
# Shared libraries, gcc's own files, and the C library's headers (stdenv's
# cc compiles C against glibc's headers, e.g. for a crate's build script).
LIB_DIRS=(/usr/lib/x86_64-linux-gnu /usr/lib64 /usr/lib/gcc /usr/libexec/gcc /usr/lib/file /usr/lib/bfd-plugins /usr/include)

# package_programs PKG...: "name<TAB>real path" of every program in /bin or
# /usr/bin of the packages.
package_programs() {
  local pkg file
  for pkg in "$@"; do
    dpkg-query -L "$pkg" 2>/dev/null | while IFS= read -r file; do
      case "$file" in
        /bin/* | /usr/bin/*)
          if [ -x "$file" ] && [ ! -d "$file" ]; then
            printf '%s\t%s\n' "${file##*/}" "$(readlink -f "$file")"
          fi
          ;;
      esac
    done
  done
}

# package_dirs PKG...: the directories directly below /usr/lib and /usr/share
# (or /usr/lib/x86_64-linux-gnu) holding the packages' other files.
package_dirs() {
  dpkg-query -L "$@" 2>/dev/null | sed -nE 's#^(/usr/(lib/x86_64-linux-gnu|lib|share)/[^/]+)/.*#\1#p' | sort -u
}

# Fake store path names (Nix's 32-character hashes).
store_name() { printf '%s-%s' "$(printf '%s' "$1" | sha256sum | cut -c1-32)" "$1"; }
PATH_DIR_NAME=$(store_name stdenv-path)
RUST_DIR_NAME=$(store_name rust-toolchain)
SETPRIV_DIR_NAME=$(store_name setpriv)

# The toolchain the package would get (rustc and cargo of nixpkgs): the
# sysroot of the rustc on PATH, mounted read-only.
rust_sysroot=$(rustc --print sysroot)
rust_target=$(rustc -vV | sed -n 's/^host: //p')
if [ ! -x "$rust_sysroot/bin/cargo" ] || [ ! -x "$rust_sysroot/bin/rustc" ]; then
  fail "requirements" "the Rust toolchain at $rust_sysroot has no bin/cargo and bin/rustc"
  finish
fi

# Programs of the PATH directory: "name<TAB>real path" lines in $work/programs.
: >"$work/programs"
for pkg in "${STDENV_PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    fail "requirements" "the Debian package $pkg (a stdenv tool) is not installed (scripts/install-test-deps.sh installs it)"
    finish
  fi
done
package_programs "${STDENV_PACKAGES[@]}" >>"$work/programs"
for alias in "${!STDENV_ALIASES[@]}"; do
  target=$(awk -F'\t' -v n="${STDENV_ALIASES[$alias]}" '$1 == n {print $2; exit}' "$work/programs")
  [ -n "$target" ] && printf '%s\t%s\n' "$alias" "$target" >>"$work/programs"
done

# sandbox_prepare DIR: a sandbox's host directories below DIR: build/ (the
# build user's, mounted at /build), store/ (root:build group 1775, mounted at
# /nix/store, with the PATH directory and the toolchain's mount point),
# etc/ (passwd, group, hosts as Nix writes them).
sandbox_prepare() {
  local dir=$1
  mkdir -p "$dir/build" "$dir/store" "$dir/etc"
  chown "$build_uid:$build_gid" "$dir/build"
  chmod 700 "$dir/build"
  chown "0:$build_gid" "$dir/store"
  chmod 1775 "$dir/store"
  local bin=$dir/store/$PATH_DIR_NAME/bin
  mkdir -p "$bin" "$dir/store/$RUST_DIR_NAME" "$dir/store/$SETPRIV_DIR_NAME/bin"
  : >"$dir/store/$SETPRIV_DIR_NAME/bin/setpriv"
  local name real
  sort -u -t$'\t' -k1,1 "$work/programs" | while IFS=$'\t' read -r name real; do
    ln -s "$real" "$bin/$name"
  done
  local prog
  for prog in cargo rustc rustdoc; do
    ln -s "/nix/store/$RUST_DIR_NAME/bin/$prog" "$bin/$prog"
  done
  chmod -R a-w "$dir/store/$PATH_DIR_NAME" "$dir/store/$SETPRIV_DIR_NAME"
  cat >"$dir/etc/passwd" <<EOF
root:x:0:0:Nix build user:/build:/noshell
nixbld:x:$build_uid:$build_gid:Nix build user:/build:/noshell
nobody:x:65534:65534:Nobody:/:/noshell
EOF
  cat >"$dir/etc/group" <<EOF
root:x:0:
nixbld:!:$build_gid:
nogroup:x:65534:
EOF
  printf '127.0.0.1 localhost\n::1 localhost\n' >"$dir/etc/hosts"
}

# sandbox_run DIR CWD ENV_FILE SCRIPT: runs SCRIPT with stdenv's bash, under
# set -eu -o pipefail as stdenv's setup does, as the build user in the sandbox of DIR (see sandbox_prepare), in CWD,
# with exactly the environment of ENV_FILE (NAME=VALUE lines) and a PATH of
# the PATH directory (plus PATH_PREFIX from ENV_FILE, if any).
sandbox_run() {
  local dir=$1 cwd=$2 env_file=$3 script=$4
  local args=(
    --perms 0755 --dir /etc --perms 0755 --dir /bin --perms 0755 --dir /nix
    --unshare-ipc --unshare-pid --unshare-net --unshare-uts --unshare-cgroup-try
    --die-with-parent --new-session
    --clearenv
    --dev /dev --perms 1777 --tmpfs /dev/shm --proc /proc
    --perms 1777 --tmpfs /tmp
    --bind "$dir/build" /build
    --bind "$dir/store" /nix/store
    --ro-bind "$rust_sysroot" "/nix/store/$RUST_DIR_NAME"
    --ro-bind "$(command -v setpriv)" "/nix/store/$SETPRIV_DIR_NAME/bin/setpriv"
    --ro-bind "$dir/etc/passwd" /etc/passwd
    --ro-bind "$dir/etc/group" /etc/group
    --ro-bind "$dir/etc/hosts" /etc/hosts
    --ro-bind "$(readlink -f /bin/bash)" /bin/sh
    --symlink usr/lib /lib
    --symlink usr/lib64 /lib64
  )
  # Directories bwrap creates for mount points are 0700: create the
  # parents of the mounts below /usr 0755, as on any system.
  local d
  for d in /usr /usr/bin /usr/lib /usr/libexec /usr/share /usr/lib/x86_64-linux-gnu; do
    args+=(--perms 0755 --dir "$d")
  done
  for d in "${LIB_DIRS[@]}" "${extra_dirs[@]}"; do
    [ -d "$d" ] && args+=(--ro-bind "$d" "$d")
  done
  # The PATH directory's programs, each at its own path (the PATH
  # directory links to them; nothing else of /usr/bin is there).
  local real
  while IFS= read -r real; do
    args+=(--ro-bind "$real" "$real")
  done < <(cut -f2 "$work/programs" | sort -u)
  local path=/nix/store/$PATH_DIR_NAME/bin line
  while IFS= read -r line; do
    case "$line" in
      PATH_PREFIX=*) path=${line#PATH_PREFIX=}:$path ;;
      *=*) args+=(--setenv "${line%%=*}" "${line#*=}") ;;
    esac
  done <"$env_file"
  args+=("${sandbox_extra[@]}" --setenv PATH "$path" --chdir "$cwd" --remount-ro /)
  nice -n 10 bwrap "${args[@]}" \
    "/nix/store/$SETPRIV_DIR_NAME/bin/setpriv" --reuid="$build_uid" --regid="$build_gid" \
    --clear-groups --inh-caps=-all --bounding-set=-all --no-new-privs -- \
    "/nix/store/$PATH_DIR_NAME/bin/bash" -c 'set -eu -o pipefail; eval "$1"' nix-build-script "$script"
}
extra_dirs=() sandbox_extra=()

# The environment Nix and stdenv give every build.
write_env() {
  local file=$1
  shift
  {
    echo "HOME=/homeless-shelter"
    echo "NIX_BUILD_TOP=/build"
    echo "TMPDIR=/build"
    echo "TEMPDIR=/build"
    echo "TMP=/build"
    echo "TEMP=/build"
    echo "NIX_STORE=/nix/store"
    echo "NIX_BUILD_CORES=${NIX_BUILD_CORES:-$(nproc)}"
    echo "NIX_LOG_FD=2"
    echo "TERM=xterm-256color"
    echo "SOURCE_DATE_EPOCH=315532800"
    echo "SSL_CERT_FILE=/no-cert-file.crt"
    printf '%s\n' "$@"
  } >"$file"
}

# --- 1. The package's build and check phases --------------------------------

binary=''
if want package; then
  echo "::: package: build and check phases of nix/package.nix"
  if recipe=$(nixi --eval --strict --json "$here/recipe.nix" --argstr libPath "${NIXPKGS_LIB:-}"); then
    :
  else
    fail "package: read nix/package.nix" "$(tail -n 20 "$errfile")"
    recipe=''
  fi
  if [ -n "$recipe" ]; then
    problems=()
    unmodelled=$(jq -r '.unmodelled | join(", ")' <<<"$recipe")
    [ -n "$unmodelled" ] && problems+=("nix/package.nix sets $unmodelled, which this simulation does not model: extend scripts/nix-sandbox.sh")
    [ "$(jq -r .useNextest <<<"$recipe")" = true ] && problems+=("nix/package.nix uses nextest, which this simulation does not model")
    [ "$(jq -r .sourceRoot <<<"$recipe")" = . ] || problems+=("the fileset's root is not the repository")
    for list in nativeBuildInputs buildInputs; do
      n=$(jq -r ".$list | length" <<<"$recipe")
      ((n == 0)) || problems+=("nix/package.nix has $list ($(jq -r ".$list | join(\", \")" <<<"$recipe")), which this simulation does not provide")
    done
    while IFS= read -r input; do
      [ -z "$input" ] && continue
      if [ -z "${NATIVE_INPUT_PACKAGES[$input]:-}" ]; then
        problems+=("nativeCheckInputs has $input, which this simulation cannot provide yet: map it to Debian packages in NATIVE_INPUT_PACKAGES")
        continue
      fi
      # shellcheck disable=SC2086
      package_programs ${NATIVE_INPUT_PACKAGES[$input]} >>"$work/programs"
      # shellcheck disable=SC2086
      mapfile -t -O "${#extra_dirs[@]}" extra_dirs < <(package_dirs ${NATIVE_INPUT_PACKAGES[$input]})
    done < <(jq -r '.nativeCheckInputs[]' <<<"$recipe")
    if ((${#problems[@]})); then
      fail "package: the recipe" "$(printf '%s\n' "${problems[@]}")"
      recipe=''
    fi
  fi

  if [ -n "$recipe" ]; then
    # The source: the fileset's files that git tracks (a flake's source is
    # the tracked files), as they are in the working tree.
    git ls-files -z | tr '\0' '\n' | sort >"$work/tracked"
    if jq -e 'has("files")' <<<"$recipe" >/dev/null; then
      jq -r '.files[]' <<<"$recipe" | sort >"$work/fileset"
    else
      : >"$work/fileset"
      while IFS= read -r path; do
        if [ -d "$path" ]; then
          git ls-files -z -- "$path" | tr '\0' '\n' >>"$work/fileset"
        elif [ -e "$path" ]; then
          echo "$path" >>"$work/fileset"
        else
          fail "package: the fileset" "nix/package.nix names $path, which does not exist"
        fi
      done < <(jq -r '.paths[]' <<<"$recipe")
      sort -u -o "$work/fileset" "$work/fileset"
    fi
    comm -12 "$work/fileset" "$work/tracked" | while IFS= read -r f; do [ -e "$f" ] && echo "$f"; done >"$work/source-files"
    echo "package: $(wc -l <"$work/source-files") files in the source (fileset of nix/package.nix, tracked by git)"

    # Dependencies vendored beforehand (the sandbox is offline), kept in
    # the user's cache per Cargo.lock.
    cache=${XDG_CACHE_HOME:-$HOME/.cache}/ospw-matrix/nix-sandbox
    lock_hash=$(sha256sum Cargo.lock | cut -c1-16)
    vendor=$cache/vendor-$lock_hash
    if [ ! -d "$vendor" ]; then
      mkdir -p "$cache"
      vendor_tmp=$(mktemp -d "$cache/.vendor-$lock_hash.XXXXXX")
      if cargo vendor --locked --versioned-dirs --manifest-path "$repo/Cargo.toml" "$vendor_tmp/v" >/dev/null 2>"$work/vendor.log"; then
        # Another run may have finished first: keep its copy.
        mv -T "$vendor_tmp/v" "$vendor" 2>/dev/null || true
        rm -rf "$vendor_tmp"
        find "$cache" -maxdepth 1 -name 'vendor-*' ! -name "vendor-$lock_hash" -exec rm -rf {} +
      else
        rm -rf "$vendor_tmp"
        fail "package: cargo vendor --locked" "$(tail -n 20 "$work/vendor.log")"
        recipe=''
      fi
    fi
  fi

  if [ -n "$recipe" ] && [ ! -d "$vendor" ]; then
    fail "package: cargo vendor --locked" "no vendored dependencies in $vendor"
    recipe=''
  fi
  if [ -n "$recipe" ]; then
    sb=$work/package
    sandbox_prepare "$sb"
    mkdir -p "$sb/build/source"
    tar -C "$repo" -cf - -T "$work/source-files" | tar -C "$sb/build/source" -xf -
    cp -r "$vendor" "$sb/build/cargo-vendor-dir"
    # cargoSetupHook: the vendored sources and the linker, in the source's
    # .cargo/config.toml.
    mkdir -p "$sb/build/source/.cargo"
    cat >>"$sb/build/source/.cargo/config.toml" <<EOF
[source.crates-io]
replace-with = "vendored-sources"

[source.vendored-sources]
directory = "/build/cargo-vendor-dir"

[target."$rust_target"]
linker = "cc"
rustflags = [ "-C", "target-feature=-crt-static" ]
EOF
    chown -R "$build_uid:$build_gid" "$sb/build"
    chmod -R u+w "$sb/build"
    target_mount=()
    if [ -n "${OSPW_NIX_SANDBOX_TARGET_DIR:-}" ]; then
      mkdir -p "$OSPW_NIX_SANDBOX_TARGET_DIR"
      chown -R "$build_uid:$build_gid" "$OSPW_NIX_SANDBOX_TARGET_DIR"
      target_mount=(--bind "$OSPW_NIX_SANDBOX_TARGET_DIR" /build/source/target)
    fi

    # The hooks' flags (cargo-build-hook.sh, cargo-check-hook.sh).
    profile_flags() { [ "$1" = debug ] || printf -- '--profile %s' "$1"; }
    feature_flags() {
      local nodef=$1 features=$2
      [ "$nodef" = true ] && printf -- '--no-default-features '
      [ -n "$features" ] && printf -- '--features=%s' "$features"
    }
    q() { jq -r "$1" <<<"$recipe"; }
    build_cmd="cargo build -j \$NIX_BUILD_CORES --target $rust_target --offline $(profile_flags "$(q .buildType)") $(feature_flags "$(q .buildNoDefaultFeatures)" "$(q '.buildFeatures | join(",")')") $(q '.cargoBuildFlags | map(@sh) | join(" ")')"
    threads='$NIX_BUILD_CORES'
    [ "$(q .dontUseCargoParallelTests)" = true ] && threads=1
    check_cmd="cargo test -j \$NIX_BUILD_CORES $(profile_flags "$(q .checkType)") $(feature_flags "$(q .checkNoDefaultFeatures)" "$(q '.checkFeatures | join(",")')") --target $rust_target --frozen --offline --no-fail-fast $(q '.cargoTestFlags | map(@sh) | join(" ")') -- --test-threads=$threads $(q '.checkFlags | map(@sh) | join(" ")')"
    script="cd /build/source
$(q .preBuild)
echo \"buildPhase: $build_cmd\"
$build_cmd"
    if [ "$(q .doCheck)" = true ]; then
      script+="
$(q .preCheck)
echo \"checkPhase: $check_cmd\"
$check_cmd
$(q .postCheck)"
    fi
    write_env "$sb/env" "out=/nix/store/$(store_name "$(q .pname)")" "RUST_LOG=" "PKG_CONFIG_ALLOW_CROSS=0"
    echo "package: building and testing in the sandbox (release profile; this takes a few minutes)"
    sandbox_extra=("${target_mount[@]}")
    status=0
    sandbox_run "$sb" /build/source "$sb/env" "$script" || status=$?
    sandbox_extra=()
    if ((status == 0)); then
      pass "package: build and check phases in the Nix build sandbox"
      built=${OSPW_NIX_SANDBOX_TARGET_DIR:-$sb/build/source/target}/$rust_target/$( [ "$(q .buildType)" = debug ] && echo debug || q .buildType)/ospw-matrix
      # The installed binary (cargoInstallHook copies it to $out/bin).
      install -m 555 "$built" "$work/ospw-matrix" && binary=$work/ospw-matrix
    else
      fail "package: build and check phases in the Nix build sandbox" "see the cargo output above; a test that needs a program or file outside the package's fileset and stdenv must use support::require (DEVELOPERS.md)"
    fi
  fi
fi

# --- Module evaluation (parts 2 and 3) --------------------------------------

vm_json=''
if want render || want typecheck || want module-eval; then
  if ((lib_status != 0)); then
    echo "SKIPPED: render derivations, the module-eval source and VM test script type checks: $NIXPKGS_LIB_MISSING"
  elif ! vm_json=$(nixi --eval --strict --json "$repo/checks/eval" -A vmTests); then
    fail "evaluate the VM tests' nodes (checks/eval -A vmTests)" "$(tail -n 20 "$errfile")"
    vm_json=''
  fi
fi

# --- 2. The render derivation ------------------------------------------------

# render_case NAME CASE_JSON EXPECT: runs one render derivation; EXPECT is
# "ok" or the text the failure must show.
render_case() {
  local name=$1 case_json=$2 expect=$3
  local dir=$work/render-$name
  sandbox_prepare "$dir"
  c() { jq -r "$1" <<<"$case_json"; }
  local host_path out package
  host_path=$(c .hostFile.path)
  out=$(c .out)
  package=$(c .package)
  for p in "$host_path" "$out" "$package"; do
    if [[ $p != /nix/store/* ]]; then
      fail "render $name" "not a store path: $p"
      return
    fi
  done
  # The inputs, as Nix gives them: read-only store paths owned by root.
  c .hostFile.text >"$dir/store/${host_path#/nix/store/}"
  chmod 444 "$dir/store/${host_path#/nix/store/}"
  mkdir -p "$dir/store/${package#/nix/store/}/bin"
  install -m 555 "$binary" "$dir/store/${package#/nix/store/}/bin/ospw-matrix"
  chmod 555 "$dir/store/${package#/nix/store/}/bin" "$dir/store/${package#/nix/store/}"
  local prefix
  prefix=$(jq -r '.nativeBuildInputs | map(. + "/bin") | join(":")' <<<"$case_json")
  write_env "$dir/env" "out=$out" "PATH_PREFIX=$prefix"
  # Every entry created, renamed or deleted in the store while the build
  # runs, even one that is gone by the end.
  python3 "$here/watch-store.py" "$dir/store" "$dir/watching" >"$dir/store-events" &
  local watcher=$! i
  for i in $(seq 100); do
    [ -e "$dir/watching" ] && break
    sleep 0.1
  done
  if [ ! -e "$dir/watching" ]; then
    kill "$watcher" 2>/dev/null
    fail "render $name" "could not watch the store directory (scripts/nix-sandbox/watch-store.py)"
    return
  fi
  local status=0
  sandbox_run "$dir" /build "$dir/env" "$(c .script)" >"$dir/log" 2>&1 || status=$?
  kill -TERM "$watcher"
  wait "$watcher"
  local new problems=()
  new=$(awk '{print $2}' "$dir/store-events" | sort -u)
  local out_name=${out#/nix/store/}
  if [ "$expect" = ok ]; then
    ((status == 0)) || problems+=("the build failed (exit $status)")
    [ -d "$dir/store/$out_name" ] || problems+=("\$out ($out) is not a directory")
    local f
    for f in host.json synapse/homeserver.yaml coturn/turnserver.conf element/config.json caddy/sites.caddy well-known/matrix/client; do
      [ -f "$dir/store/$out_name/$f" ] || problems+=("\$out has no $f")
    done
    [ "$(stat -c %u "$dir/store/$out_name" 2>/dev/null)" = "$build_uid" ] || problems+=("\$out is not the build user's")
    local others
    others=$(grep -vxF -- "$out_name" <<<"$new" || true)
    [ -z "$others" ] || problems+=("written in the store beside \$out (even if gone by the end): $(echo $others)")
  else
    ((status != 0)) || problems+=("the build succeeded; it must fail")
    grep -qF -- "$expect" "$dir/log" || problems+=("the failure does not say \"$expect\"")
    [ -z "$new" ] || problems+=("written in the store by a failed build: $(echo $new)")
  fi
  if ((${#problems[@]})); then
    fail "render $name" "$(printf '%s\n' "${problems[@]}"; echo "--- build log:"; tail -n 30 "$dir/log")"
  else
    pass "render $name"
  fi
}

if want render && [ -n "$vm_json" ]; then
  echo "::: render: modules/host-description.nix's render derivation, as the build user"
  if [ -z "$binary" ] || [ ! -x "$binary" ]; then
    fail "render derivations" "no ospw-matrix built in the sandbox (the package part did not run or failed)"
  elif ! failing_json=$(nixi --eval --strict --json "$repo/checks/eval" -A failingRenders); then
    fail "evaluate the failing render cases (checks/eval -A failingRenders)" "$(tail -n 20 "$errfile")"
  else
    n=0
    while IFS=$'\t' read -r test node; do
      render_case "$test-$node" "$(jq -c --arg t "$test" --arg n "$node" '.[$t].renders[$n]' <<<"$vm_json")" ok
      n=$((n + 1))
    done < <(jq -r 'to_entries[] | .key as $t | .value.renders | keys[] | [$t, .] | @tsv' <<<"$vm_json")
    ((n > 0)) || fail "render derivations" "no VM test node runs services.ospw-matrix"
    while IFS= read -r name; do
      case_json=$(jq -c --arg n "$name" '.[$n]' <<<"$failing_json")
      render_case "$name" "$case_json" "$(jq -r .mustSay <<<"$case_json")"
    done < <(jq -r 'keys[]' <<<"$failing_json")
  fi
fi

# --- 4. The flake's module-eval check: only its source ----------------------
# `nix flake check` runs checks/eval/run.sh in a derivation whose source is
# a lib.fileset of flake.nix: a file the evaluation tests read must be in it.
# run.sh runs here on a copy of exactly that source (tracked files), with a
# private Nix state as the derivation sets up.

if want module-eval && ((lib_status == 0)); then
  echo "::: module-eval: checks/eval/run.sh on the flake's module-eval source only"
  if ! me_paths=$(nixi --eval --strict --json "$repo/checks/eval" -A moduleEvalSource); then
    fail "module-eval: read its source (checks/eval -A moduleEvalSource)" "$(tail -n 20 "$errfile")"
  else
    me=$work/module-eval
    mkdir -p "$me/src" "$me/tmp"
    jq -r '.[]' <<<"$me_paths" | while IFS= read -r path; do
      git ls-files -z -- "$path"
    done | tar -C "$repo" --null -T - -cf - | tar -C "$me/src" -xf -
    if (
      cd "$me/tmp" &&
        export HOME=$me/tmp NIX_CONF_DIR=$me/tmp/etc NIX_LOCALSTATE_DIR=$me/tmp/var \
          NIX_LOG_DIR=$me/tmp/var/log/nix NIX_STATE_DIR=$me/tmp/var/nix NIX_STORE_DIR=$me/tmp/store &&
        nix-store --init 2>/dev/null &&
        bash "$me/src/checks/eval/run.sh"
    ) >"$me/log" 2>&1; then
      pass "module-eval: the evaluation tests pass on the flake's module-eval source alone"
    else
      fail "module-eval: the evaluation tests fail on the flake's module-eval source alone (a file they read is missing from its fileset in flake.nix?)" "$(grep -E '^FAIL|^     |passed, ' "$me/log" | head -n 40)"
    fi
  fi
fi

# --- 3. The VM test scripts: mypy and pyflakes --------------------------------

if want typecheck && [ -n "$vm_json" ]; then
  echo "::: typecheck: the VM test scripts, as nixpkgs' test driver checks them"
  venv=${OSPW_TOOLS_VENV:-/opt/ospw-tools-venv}
  if [ ! -x "$venv/bin/mypy" ] || [ ! -x "$venv/bin/pyflakes" ]; then
    fail "typecheck" "mypy and pyflakes are not in $venv (scripts/install-test-deps.sh installs them)"
  else
    "$venv/bin/python" "$here/typecheck.py" "$repo/checks/typing" "$work/typecheck" <<<"$vm_json" >"$work/typecheck.log" 2>&1
    tc_status=$?
    cat "$work/typecheck.log"
    p=$(grep -c '^PASS ' "$work/typecheck.log" || true)
    f=$(grep -c '^FAIL ' "$work/typecheck.log" || true)
    passed=$((passed + p)) failed=$((failed + f))
    if ((tc_status != 0 && f == 0)); then fail "typecheck" "scripts/nix-sandbox/typecheck.py failed"; fi
  fi
fi

finish
