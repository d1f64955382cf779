#!/usr/bin/env bash
# Acceptance tests of `orrery dap` with Microsoft's DAP test client
# (@vscode/debugadapter-testsupport, node:test) against real BEAM nodes: a private copy of
# tests/fixtures/kv started with a random --sname and --cookie, called from a separate hidden
# node, killed by pid at the end.
#
#   tests/dap-testsupport/run.sh                        # builds target/release/orrery if needed
#   ORRERY=/path/to/orrery tests/dap-testsupport/run.sh # another binary
#   ORRERY_DAP_STDERR=1 ...                             # show the adapter's stderr
#
# Installs what it needs: Erlang, Elixir and Node.js with apt-get when missing (sudo when not
# root), the npm packages with `npm ci` from the committed package-lock.json.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
REPO=$(cd ../.. && pwd)
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo

missing=()
{ command -v elixir >/dev/null && command -v erl >/dev/null; } || missing+=(erlang elixir)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  echo "apt-get install ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ -z "${ORRERY:-}" ]; then
  export ORRERY="$REPO/target/release/orrery"
  if [ ! -x "$ORRERY" ]; then
    (cd "$REPO" && cargo build --release)
  fi
fi
[ -x "$ORRERY" ] || { echo "no orrery binary at $ORRERY" >&2; exit 1; }

npm ci --no-audit --no-fund --loglevel=error
exec node --test --test-reporter=spec test/debugger.test.js
