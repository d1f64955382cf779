#!/usr/bin/env bash
# Tests of the Emacs package, in real Emacs against a real node:
#   - Debian's Emacs 28.2 with elpa-eglot 1.9 (the system `emacs`), and
#   - Emacs 30.1 from bookworm-backports (eglot 1.17 built in).
# Both can't be installed as Debian's `emacs` at once, so Emacs 30 is unpacked from its
# .debs (dpkg-deb -x) into a cache directory and run from there (see emacs30_setup).
#
# For each Emacs: byte-compile with warnings as errors, checkdoc, then ERT in
# `emacs --batch` against a fresh kv fixture node (random sname and cookie, stopped by pid).
#
# Env: ORRERY_EMACS30_ROOT  where Emacs 30 is unpacked (default ~/.cache/orrery/emacs-30)
#      ORRERY_TEST_EMACS    "28 30" (default) or one of them
#      ORRERY_TEST_DAP=1    also run the debugger test (needs `orrery dap`)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
FIXTURE="$ROOT/tests/fixtures/kv"
ORRERY="$ROOT/target/release/orrery"
SUDO=
[ "$(id -u)" = 0 ] || SUDO=sudo
APT=($SUDO env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 -y -q)
E30_ROOT=${ORRERY_EMACS30_ROOT:-${XDG_CACHE_HOME:-$HOME/.cache}/orrery/emacs-30}
EMACS30="$E30_ROOT/bin/emacs-30"
LANES=${ORRERY_TEST_EMACS:-28 30}

log() { printf '\n=== %s\n' "$*" >&2; }
die() { printf 'test.sh: %s\n' "$*" >&2; exit 1; }

apt_updated=
apt_update() { [ -n "$apt_updated" ] || { "${APT[@]}" update >/dev/null; apt_updated=1; }; }
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'ok installed'; }

# --- Emacs 28 (Debian): emacs-nox, elpa-eglot, elpa-dap-mode -----------------------------
emacs28_setup() {
  local missing=()
  for p in emacs-nox elpa-eglot elpa-dap-mode; do have_pkg "$p" || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]} (apt-get)"
    apt_update
    "${APT[@]}" install "${missing[@]}" >/dev/null
  fi
  local v
  v=$(emacs --batch --eval '(princ emacs-major-version)' 2>/dev/null)
  [ "$v" = 28 ] || die "the system emacs is Emacs $v, expected Debian's 28"
}

# --- Emacs 30 (bookworm-backports), unpacked beside the system's ---------------------------
backports_source() {
  if grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then return; fi
  local uri
  uri=$(grep -hs '^URIs:' /etc/apt/sources.list.d/debian.sources | awk '{print $2}' \
        | grep -v security | head -1)
  [ -n "$uri" ] || uri=$(awk '/^deb .*bookworm main/{print $2; exit}' /etc/apt/sources.list 2>/dev/null)
  [ -n "$uri" ] || uri=http://deb.debian.org/debian
  log "adding the bookworm-backports apt source ($uri)"
  printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
    "$uri" | $SUDO tee /etc/apt/sources.list.d/bookworm-backports.sources >/dev/null
  apt_updated=
}

emacs30_setup() {
  if [ -x "$EMACS30" ] && "$EMACS30" --batch --eval '(princ emacs-version)' >/dev/null 2>&1; then
    return
  fi
  backports_source
  apt_update
  local version
  version=$(apt-cache madison emacs-nox | awk -F'|' '/bookworm-backports/{gsub(/ /,"",$2); print $2; exit}')
  [ -n "$version" ] || die "no emacs-nox in bookworm-backports"
  log "unpacking Emacs $version from bookworm-backports into $E30_ROOT"
  # Libraries it links against (the Emacs packages themselves are only unpacked).
  local libs
  libs=$(apt-cache show "emacs-nox=$version" | awk -F': ' '/^Depends:/{print $2; exit}' \
         | tr ',' '\n' | sed 's/^ *//; s/ .*//; s/|.*//' | grep '^lib' || true)
  # shellcheck disable=SC2086
  "${APT[@]}" install --no-install-recommends $libs >/dev/null
  local dl
  dl=$(mktemp -d)
  chmod 755 "$dl"
  (cd "$dl" && apt-get download -q "emacs-nox=$version" "emacs-bin-common=$version" \
      "emacs-common=$version" >/dev/null 2>&1) || die "apt-get download of Emacs $version failed"
  rm -rf "$E30_ROOT"
  mkdir -p "$E30_ROOT/bin"
  for deb in "$dl"/*.deb; do dpkg-deb -x "$deb" "$E30_ROOT"; done
  rm -rf "$dl"
  local lisp=$E30_ROOT/usr/share/emacs/30.1
  local exec=$E30_ROOT/usr/libexec/emacs/30.1/x86_64-linux-gnu
  local pdmp
  pdmp=$(ls "$exec"/*.pdmp | head -1)
  # The system's site-lisp (Debian's elpa packages, e.g. dap-mode) stays on the path.
  cat >"$EMACS30" <<EOF
#!/bin/sh
# Emacs 30.1 from bookworm-backports, unpacked by editors/emacs/test.sh.
export EMACSLOADPATH="$lisp/lisp:$lisp/site-lisp:/etc/emacs:/usr/local/share/emacs/site-lisp:/usr/share/emacs/site-lisp"
export EMACSDATA="$lisp/etc" EMACSDOC="$lisp/etc" EMACSPATH="$exec"
exec "$E30_ROOT/usr/bin/emacs-nox" --dump-file="$pdmp" "\$@"
EOF
  chmod +x "$EMACS30"
  "$EMACS30" --batch --eval '(princ (format "Emacs %s\n" emacs-version))' 2>/dev/null \
    || die "the unpacked Emacs 30 does not run"
}

# --- Erlang/Elixir, the orrery binary ------------------------------------------------------
beam_setup() {
  if ! command -v elixir >/dev/null || ! command -v erl >/dev/null; then
    log "installing Erlang and Elixir (apt-get)"
    apt_update
    "${APT[@]}" install erlang elixir >/dev/null
  fi
}

orrery_setup() {
  if [ ! -x "$ORRERY" ]; then
    log "building orrery (cargo build --release)"
    (cd "$ROOT" && cargo build --release)
  fi
}

# --- The fixture node ----------------------------------------------------------------------
NODE_PID=
WORK=$(mktemp -d)
cleanup() {
  if [ -n "$NODE_PID" ]; then kill "$NODE_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

start_node() {
  stop_node
  local name="kv_$RANDOM$RANDOM" cookie="c$RANDOM$RANDOM"
  printf '%s' "$cookie" >"$WORK/cookie"
  chmod 600 "$WORK/cookie"
  (cd "$FIXTURE" && exec elixir --sname "$name" --cookie "$cookie" -S mix run --no-halt) \
    >"$WORK/node.log" 2>&1 &
  NODE_PID=$!
  # Wait (with a deadline) until the node is registered with EPMD.
  local deadline=$((SECONDS + 60))
  until epmd -names 2>/dev/null | grep -q "^name $name at"; do
    kill -0 "$NODE_PID" 2>/dev/null || { cat "$WORK/node.log" >&2; die "the kv node died"; }
    [ $SECONDS -lt $deadline ] || die "the kv node did not register with EPMD in 60 s"
    sleep 0.1
  done
  export ORRERY_TEST_NODE="$name@$(hostname -s)" ORRERY_TEST_COOKIE_FILE="$WORK/cookie"
}

stop_node() {
  if [ -n "$NODE_PID" ]; then
    kill "$NODE_PID" 2>/dev/null || true
    wait "$NODE_PID" 2>/dev/null || true
    NODE_PID=
  fi
}

# --- One Emacs -----------------------------------------------------------------------------
run_lane() {
  local label=$1 emacs=$2
  local elc="$WORK/elc-$label"
  mkdir -p "$elc"
  log "Emacs $label: byte-compile (warnings are errors) and checkdoc"
  "$emacs" --batch -L "$HERE" -l "$HERE/test/orrery-lint.el" \
    --eval "(orrery-lint-batch \"$elc\")" || return 1
  start_node
  log "Emacs $label: ERT against $ORRERY_TEST_NODE"
  local rc=0
  # Three Emacs processes: Orrery as eglot's server, Orrery beside another server
  # (eglot + companion, lsp-mode + add-on), then the debugger tests (dap-mode).
  for suite in orrery-test orrery-coexist-test orrery-debug-test; do
    ORRERY_BIN="$ORRERY" ORRERY_FIXTURE="$FIXTURE" \
      "$emacs" --batch -L "$elc" -L "$HERE/test" -l "$suite" \
      -f ert-run-tests-batch-and-exit || rc=1
  done
  stop_node
  return $rc
}

emacs28_setup
for lane in $LANES; do
  if [ "$lane" = 30 ]; then emacs30_setup; fi
done
beam_setup
orrery_setup
(cd "$FIXTURE" && mix compile >/dev/null)

failed=()
for lane in $LANES; do
  case $lane in
    28) run_lane 28 emacs || failed+=(28) ;;
    30) run_lane 30 "$EMACS30" || failed+=(30) ;;
    *) die "unknown Emacs lane $lane" ;;
  esac
done

if [ ${#failed[@]} -gt 0 ]; then
  log "FAILED on Emacs ${failed[*]}"
  exit 1
fi
log "all Emacs tests passed (Emacs $LANES)"
