#!/usr/bin/env bash
# Runs the backup unit's script (checks/eval -A backupScript, keep = 3)
# against a fake `ospw-matrix backup` in a temporary directory and checks
# what the pruning deletes: nothing when the backup fails or leaves no
# archive; otherwise everything but the new archive and the 2 newest
# others, and never a file not named ospw-matrix-<UTC time>.tar.
# Usage: backup-prune.sh SCRIPT_FILE. Prints what went wrong; exits 1 then.
set -uo pipefail

script_file=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/bin"

# The fake CLI writes --out unless FAKE_MODE says otherwise.
# (The shebang names this bash: there is no /usr/bin/env in the build
# sandbox of the flake's module-eval check.)
{
  printf '#!%s\n' "$(command -v bash)"
  cat <<'FAKE'
out=
while [ $# -gt 0 ]; do
  [ "$1" = --out ] && out=$2
  shift
done
case "${FAKE_MODE:-ok}" in
  fail) echo "fake: backup failed" >&2; exit 1 ;;
  no-archive) exit 0 ;;
  *) echo archive >"$out" ;;
esac
FAKE
} >"$tmp/bin/ospw-matrix"
chmod +x "$tmp/bin/ospw-matrix"

# Store paths of the fake packages -> the fake CLI and the host's coreutils.
sed -E \
  -e "s#/var/backup/ospw-matrix#$tmp/dir#g" \
  -e 's#/[^ "$(]*/[0-9a-f]{32}-coreutils/bin/##g' \
  -e "s#/[^ \"\$(]*/[0-9a-f]{32}-ospw-matrix/bin/ospw-matrix#$tmp/bin/ospw-matrix#g" \
  "$script_file" >"$tmp/script.sh"

errors=0
check() { # description, expected, actual
  if [ "$2" != "$3" ]; then
    errors=$((errors + 1))
    printf '%s:\n  expected: %s\n  got:      %s\n' "$1" "$2" "$3"
  fi
}
listing() { (cd "$tmp/dir" && ls -A | tr '\n' ' '); }
fresh() { # the archives and other files of a directory with history
  rm -rf "$tmp/dir" && mkdir "$tmp/dir"
  for name in "$@"; do echo old >"$tmp/dir/$name"; done
}
run() { FAKE_MODE=$1 bash "$tmp/script.sh" >"$tmp/out" 2>&1; echo $?; }

history=(
  ospw-matrix-20261101T000000Z.tar ospw-matrix-20261102T000000Z.tar
  ospw-matrix-20261103T000000Z.tar ospw-matrix-20261104T000000Z.tar
  ospw-matrix-20991231T000000Z.tar
  other.tar ospw-matrix-latest.tar ospw-matrix-20261101T000000Z.tar.tmp-5
)

fresh "${history[@]}"
before=$(listing)
check "failed backup: exit status" 1 "$(run fail)"
check "failed backup: nothing deleted" "$before" "$(listing)"

fresh "${history[@]}"
check "backup without archive: exit status" 1 "$(run no-archive)"
check "backup without archive: nothing deleted" "$before" "$(listing)"

fresh "${history[@]}"
check "backup: exit status" 0 "$(run ok)"
new=$(cd "$tmp/dir" && ls | grep -vxF -e "${history[0]}" -e "${history[1]}" -e "${history[2]}" \
  -e "${history[3]}" -e "${history[4]}" -e "${history[5]}" -e "${history[6]}" -e "${history[7]}")
check "backup: one new archive named by the UTC time" 1 "$(printf '%s\n' "$new" | grep -cxE 'ospw-matrix-[0-9]{8}T[0-9]{6}Z\.tar')"
# The new archive is kept even though an archive dated 2099 sorts after it.
check "backup: kept the new archive, the 2 newest others and every other file" \
  "$(printf '%s\n' ospw-matrix-20261101T000000Z.tar.tmp-5 ospw-matrix-20261104T000000Z.tar "$new" \
    ospw-matrix-20991231T000000Z.tar ospw-matrix-latest.tar other.tar | sort | tr '\n' ' ')" \
  "$(cd "$tmp/dir" && ls -A | sort | tr '\n' ' ')"
check "backup: says what it deleted" 3 "$(grep -c '^ospw-matrix-backup: deleting ' "$tmp/out")"

fresh ospw-matrix-20261101T000000Z.tar
check "backup with few archives: exit status" 0 "$(run ok)"
check "backup with few archives: nothing deleted" 2 "$(cd "$tmp/dir" && ls | wc -l | tr -d ' ')"

[ "$errors" -eq 0 ]
