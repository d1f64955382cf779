#!/usr/bin/env bash
# The BEAM version matrix: the Rust test suites and Microsoft's DAP test client against each
# Debian suite's Erlang/OTP and Elixir, with a summary table at the end.
#
#   tests/matrix/run.sh                  # every suite in $MATRIX (default: bookworm trixie sid)
#   tests/matrix/run.sh trixie           # some suites (or MATRIX="trixie sid")
#   tests/matrix/run.sh --exec sid CMD…  # run CMD in a suite as its tests run (e.g. bash,
#                                        #   or target/release/orrery demo)
#   ORRERY_MATRIX_KEEP=1 …               # keep each run's scratch dir (repo copy, /tmp, HOME)
#
#   suite     Erlang/OTP  Elixir
#   bookworm  25          1.14
#   trixie    27          1.18
#   sid       29          1.20   (whatever sid had when its root was built)
#
# How: the test executables are built once on this machine (`cargo test --no-run`) and run
# unchanged on every suite (linked against this machine's glibc, they run on newer ones).
# The suite this machine runs is tested natively; every other one in a Debian root made by
# `debootstrap --variant=minbase` + `apt-get install erlang elixir nodejs`, from the mirror
# this machine's apt uses, cached in $CACHE/<suite> (see below; built in a temporary directory
# and renamed when complete, so an interrupted build is never used; delete it to rebuild).
# A suite runs in mount, network and PID namespaces of its own (`unshare`): the root's `erl`,
# `epmd`, `elixir`, `mix` and `node` on PATH, its own loopback (its EPMD and nodes never meet
# another suite's), a private /tmp and HOME, and a copy of the repository's sources at the
# same absolute path (fixtures are compiled per suite) with the target directory read-only.
# Whatever a suite leaves running dies with its PID namespace and its mounts with its mount
# namespace, however the run ends.
#
# Suites other than the host's need root (or password-less sudo) on a Debian host: without,
# they are skipped with a message. Editor tests are not in the matrix (host version only).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SELF="$REPO/tests/matrix/run.sh"
PATH_IN=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
TEST_TIMEOUT=${ORRERY_MATRIX_TIMEOUT:-1800} # seconds per test executable
# What a root holds; a cached root made for another recipe is built again.
ROOT_PACKAGES="erlang elixir nodejs"
RECIPE="recipe 1: minbase + $ROOT_PACKAGES"

# ---------------------------------------------------------------------------------------------
# In a suite's new namespaces: `run.sh --inside ROOT WORK TARGET CMD…`. Mounts the root's
# file systems, the repository copy and the target directory, then runs CMD in the root
# (ROOT "/": the host, nothing mounted).
if [ "${1:-}" = --inside ]; then
  ROOT=$2 WORK=$3 TARGET=$4
  shift 4
  trap 'exit 130' INT TERM
  # A new network namespace's loopback starts down (the host's is up already).
  ip link set lo up 2>/dev/null || true
  if [ "$ROOT" = / ]; then exec "$@"; fi
  mount -t proc proc "$ROOT/proc"
  mount --rbind /dev "$ROOT/dev"
  mount --rbind /sys "$ROOT/sys"
  touch "$ROOT/etc/hosts"
  mount --bind /etc/hosts "$ROOT/etc/hosts"
  mount --bind "$WORK/tmp" "$ROOT/tmp"
  mount --bind "$WORK/home" "$ROOT/root"
  mkdir -p "$ROOT$REPO"
  mount --bind "$WORK/repo" "$ROOT$REPO"
  mkdir -p "$ROOT$TARGET"
  mount --bind "$TARGET" "$ROOT$TARGET"
  mount -o remount,bind,ro "$ROOT$TARGET"
  pass=()
  for v in $(compgen -e); do
    case $v in ORRERY_* | RUST_BACKTRACE | RUST_LOG | CI) pass+=("$v=${!v}") ;; esac
  done
  exec chroot "$ROOT" /usr/bin/env -i "PATH=$PATH_IN" HOME=/root USER=root LOGNAME=root \
    LANG=C.UTF-8 TERM="${TERM:-dumb}" TMPDIR=/tmp "${pass[@]}" \
    /bin/sh -c 'cd "$1" && shift && exec "$@"' sh "$PWD" "$@"
fi

# ---------------------------------------------------------------------------------------------
EXEC=()
if [ "${1:-}" = --exec ]; then
  [ $# -ge 3 ] || { echo "usage: $0 --exec SUITE CMD…" >&2; exit 2; }
  SUITES=("$2")
  shift 2
  EXEC=("$@")
elif [ $# -gt 0 ]; then
  SUITES=("$@")
else
  read -ra SUITES <<<"${MATRIX:-bookworm trixie sid}"
fi
CACHE=${ORRERY_MATRIX_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/orrery-matrix}
HOST_SUITE=""
if [ -r /etc/os-release ] && [ "$(. /etc/os-release && echo "${ID:-}")" = debian ]; then
  HOST_SUITE=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
fi
DEBIAN=1
if [ -z "$HOST_SUITE" ]; then
  # Not Debian: no roots, but this machine's own Erlang/Elixir is tested all the same.
  DEBIAN=0
  HOST_SUITE=host
  [ ${#EXEC[@]} -gt 0 ] || SUITES=(host "${SUITES[@]}")
fi

SUDO=""
CAN_ROOT=1
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO=sudo; else CAN_ROOT=0; fi
fi

say() { printf '\033[1m== %s\033[0m\n' "$*"; }

apt_install() {
  echo "apt-get install $*"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

# The apt mirror this machine uses for its own suite: the roots come from the same place.
host_mirror() {
  if [ -n "${ORRERY_MATRIX_MIRROR:-}" ]; then
    echo "$ORRERY_MATRIX_MIRROR"
    return
  fi
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -r "$f" ] || continue
    # deb [options] URI SUITE COMPONENTS…
    awk -v s="$HOST_SUITE" '$1 == "deb" { i = 2
        if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
        if ($(i + 1) == s) { print $i; exit } }' "$f"
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -r "$f" ] || continue
    # deb822 stanzas: URIs: … / Suites: …
    awk -v s="$HOST_SUITE" 'BEGIN { RS = "" } {
        uri = ""; ok = 0; n = split($0, l, "\n")
        for (i = 1; i <= n; i++) {
          if (l[i] ~ /^URIs:/) { split(l[i], u, /[ \t]+/); uri = u[2] }
          if (l[i] ~ /^Suites:/) { m = split(l[i], w, /[ \t]+/); for (j = 2; j <= m; j++) if (w[j] == s) ok = 1 }
        }
        if (ok && uri != "") { print uri; exit } }' "$f"
  done
}

BUILDING=""
root_ok() { [ "$(head -1 "$1/.orrery-matrix-root" 2>/dev/null)" = "$RECIPE" ]; }

# Build the root of SUITE in $CACHE/SUITE when it is missing.
ensure_root() {
  local suite=$1 dir="$CACHE/$1" log="$CACHE/$1.build.log" mirror
  root_ok "$dir" && return 0
  command -v debootstrap >/dev/null || apt_install debootstrap
  mirror=$(host_mirror | head -1)
  if [ -z "$mirror" ]; then
    echo "no Debian mirror for $HOST_SUITE in /etc/apt (set ORRERY_MATRIX_MIRROR)" >&2
    return 1
  fi
  mkdir -p "$CACHE"
  # One builder at a time. A build that was interrupted is removed, never used.
  exec 9>"$CACHE/.lock"
  flock 9
  if ! root_ok "$dir"; then
    $SUDO rm -rf --one-file-system "$CACHE/.build-$suite".* "$dir"
    BUILDING="$CACHE/.build-$suite.$$"
    say "$suite: building its root (debootstrap, then apt-get install $ROOT_PACKAGES; log: $log)"
    if ! $SUDO debootstrap --variant=minbase "$suite" "$BUILDING" "$mirror" >"$log" 2>&1; then
      tail -20 "$log" >&2
      echo "debootstrap $suite failed (log: $log)" >&2
      return 1
    fi
    # Nothing starts services inside the root (epmd.socket and friends).
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$BUILDING/usr/sbin/policy-rc.d" >/dev/null
    $SUDO chmod +x "$BUILDING/usr/sbin/policy-rc.d"
    # sid's Release file may be past its Valid-Until: it is still what sid is.
    if ! $SUDO unshare --mount --pid --fork --kill-child --mount-proc="$BUILDING/proc" \
      chroot "$BUILDING" /usr/bin/env -i "PATH=$PATH_IN" DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 \
      sh -c 'apt-get -o Acquire::Check-Valid-Until=false update -qq &&
             apt-get -o Acquire::Check-Valid-Until=false install -y -qq --no-install-recommends \
               '"$ROOT_PACKAGES"' && apt-get clean' >>"$log" 2>&1; then
      tail -20 "$log" >&2
      echo "apt-get install in the $suite root failed (log: $log)" >&2
      return 1
    fi
    { echo "$RECIPE"; $SUDO chroot "$BUILDING" dpkg-query -W erlang-base elixir nodejs; } |
      $SUDO tee "$BUILDING/.orrery-matrix-root" >/dev/null
    $SUDO mv "$BUILDING" "$dir"
    BUILDING=""
  fi
  flock -u 9
}

WORKS=()
cleanup() {
  local w
  if [ -n "$BUILDING" ]; then $SUDO rm -rf --one-file-system "$BUILDING"; fi
  if [ "${ORRERY_MATRIX_KEEP:-}" != 1 ]; then
    for w in "${WORKS[@]}"; do $SUDO rm -rf --one-file-system "$w"; done
  else
    for w in "${WORKS[@]}"; do echo "kept $w"; done
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The scratch dir of one suite's run: a copy of the sources (no build output, so the suite
# compiles the fixtures with its own Elixir), /tmp and HOME.
new_work() {
  local suite=$1 work
  work=$(mktemp -d "${TMPDIR:-/tmp}/orrery-matrix-$suite.XXXXXX")
  WORK=$work
  WORKS+=("$work")
  mkdir -p "$work/tmp" "$work/home" "$work/repo"
  chmod 1777 "$work/tmp"
  tar -C "$REPO" --exclude=./target --exclude=./.git --exclude=_build --exclude=.orrery \
    --exclude=node_modules -cf - . | tar -C "$work/repo" -xf -
  if [ -d "$REPO/tests/dap-testsupport/node_modules" ]; then
    cp -a "$REPO/tests/dap-testsupport/node_modules" "$work/repo/tests/dap-testsupport/"
  fi
}

is_host() { [ "$1" = "$HOST_SUITE" ]; }

# Why SUITE cannot run here, if it cannot.
cannot_run() {
  is_host "$1" && return 1
  if [ "$DEBIAN" = 0 ]; then
    echo "needs a Debian host (debootstrap, its apt mirror)"
  elif [ "$CAN_ROOT" = 0 ]; then
    echo "needs root or password-less sudo (debootstrap, chroot, unshare)"
  elif ! command -v unshare >/dev/null; then
    echo "needs unshare (util-linux)"
  else
    return 1
  fi
}

# Run CMD… for SUITE in its namespaces (the host's suite, too, when we are root), in the
# scratch dir WORK made by new_work (not here: enter may run in a pipeline's subshell, and
# cleanup must know the dir).
enter() {
  local suite=$1 root=/ work=/
  shift
  if ! is_host "$suite"; then
    root="$CACHE/$suite"
    work=$WORK
  fi
  local ns=()
  # The host's suite gets namespaces only when we are root ourselves: through sudo its
  # tests would leave root's files in the repository. Its /proc is mounted anew (tests read
  # /proc/PID of the processes they start); a root's is mounted by --inside.
  if ! is_host "$suite"; then
    ns=($SUDO unshare --mount --net --pid --fork --kill-child)
  elif [ "$(id -u)" = 0 ] && command -v unshare >/dev/null; then
    ns=(unshare --mount --net --pid --fork --kill-child --mount-proc)
  fi
  "${ns[@]}" bash "$SELF" --inside "$root" "$work" "$TARGET" "$@"
}

cd "$REPO"
TARGET=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
if [ "$CAN_ROOT" = 1 ] && ! command -v ip >/dev/null; then apt_install iproute2; fi

if [ ${#EXEC[@]} -gt 0 ]; then
  s=${SUITES[0]}
  if why=$(cannot_run "$s"); then echo "$s $why" >&2; exit 1; fi
  is_host "$s" || { ensure_root "$s" && new_work "$s"; }
  enter "$s" "${EXEC[@]}"
  exit
fi

# ---------------------------------------------------------------------------------------------
say "building the test executables once (cargo build --release; cargo test --release --no-run)"
cargo build --release
LIST=$(mktemp)
WORKS+=("$LIST")
cargo test --release --no-run --message-format=json 2>/dev/null |
  sed -n 's/.*"profile":{[^}]*"test":true[^}]*}.*"executable":"\([^"]*\)".*/\1/p' >"$LIST"
[ -s "$LIST" ] || { echo "cargo test --no-run listed no test executable" >&2; exit 1; }
echo "$(wc -l <"$LIST") test executables in $TARGET"

# The DAP test client's packages (and the host's Node.js when missing), for every suite.
if ! (cd tests/dap-testsupport && { command -v npm >/dev/null || apt_install nodejs npm; } &&
  npm ci --no-audit --no-fund --loglevel=error); then
  echo "matrix: npm ci failed: the DAP test client is skipped" >&2
  rm -rf tests/dap-testsupport/node_modules
fi

LOGDIR="$TARGET/matrix"
mkdir -p "$LOGDIR"
cp "$LIST" "$LOGDIR/tests"
declare -A OTP EX PASSED FAILED TIME NOTE
status=0

run_suite() {
  local suite=$1 log="$LOGDIR/$1.log" why start rc=0
  if why=$(cannot_run "$suite"); then
    NOTE[$suite]="skipped: $why"
    echo "matrix: skipping $suite: it $why" >&2
    return 0
  fi
  if ! is_host "$suite"; then
    start=$SECONDS
    ensure_root "$suite" || { NOTE[$suite]="its root could not be built"; return 1; }
    [ $((SECONDS - start)) -lt 5 ] || NOTE[$suite]="(root built in $((SECONDS - start))s)"
  fi
  is_host "$suite" || new_work "$suite"
  say "$suite: tests (log: $log)"
  start=$SECONDS
  # The list is in the target dir, which the root sees at the same path.
  enter "$suite" bash "$REPO/tests/matrix/suite.sh" "$REPO" "$TARGET" "$LOGDIR/tests" \
    "$TEST_TIMEOUT" 2>&1 | tee "$log" || rc=$?
  TIME[$suite]=$((SECONDS - start))
  OTP[$suite]=$(sed -n 's/^matrix-versions: otp=\([^ ]*\) .*/\1/p' "$log" | head -1)
  EX[$suite]=$(sed -n 's/^matrix-versions: .* elixir=\(.*\)$/\1/p' "$log" | head -1)
  # cargo's harness: "test result: ok. 12 passed; 0 failed; …"; node's: "ℹ pass 9", "ℹ fail 0".
  local p f dead
  p=$(awk '/^test result:/ { for (i = 1; i < NF; i++) if ($(i + 1) ~ /^passed;?$/) s += $i }
           /^ℹ pass [0-9]+$/ { s += $3 } END { print s + 0 }' "$log")
  f=$(awk '/^test result:/ { for (i = 1; i < NF; i++) if ($(i + 1) ~ /^failed;?$/) s += $i }
           /^ℹ fail [0-9]+$/ { s += $3 } END { print s + 0 }' "$log")
  # An executable that exited non-zero with no failed test counted: it crashed or timed out.
  dead=$(awk '/^matrix-run:/ { bad = 0 } /^test result: FAILED/ || /^ℹ fail [1-9]/ { bad = 1 }
              /^matrix-exit: [1-9]/ && !bad { n++ } END { print n + 0 }' "$log")
  PASSED[$suite]=$p
  FAILED[$suite]=$((f + dead))
  [ "$dead" = 0 ] || NOTE[$suite]="$dead test executable(s) crashed or timed out ${NOTE[$suite]:-}"
  if [ -z "${OTP[$suite]}" ]; then
    NOTE[$suite]="did not start ${NOTE[$suite]:-}"
    return 1
  fi
  [ "${FAILED[$suite]}" = 0 ] && [ "$rc" = 0 ]
}

for s in "${SUITES[@]}"; do
  run_suite "$s" || status=1
done

say "BEAM version matrix (logs: $LOGDIR)"
printf '%-10s %-5s %-8s %7s %7s %8s  %s\n' suite OTP Elixir passed failed time ""
tp=0 tf=0
for s in "${SUITES[@]}"; do
  t=${TIME[$s]:-}
  [ -z "$t" ] || t="$((t / 60))m$((t % 60))s"
  printf '%-10s %-5s %-8s %7s %7s %8s  %s\n' "$s" "${OTP[$s]:--}" "${EX[$s]:--}" \
    "${PASSED[$s]:--}" "${FAILED[$s]:--}" "${t:--}" "${NOTE[$s]:-}"
  tp=$((tp + ${PASSED[$s]:-0})) tf=$((tf + ${FAILED[$s]:-0}))
done
echo "matrix: $tp passed, $tf failed"
exit $status
