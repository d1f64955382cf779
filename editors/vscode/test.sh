#!/usr/bin/env bash
# The VS Code extension's tests:
#   1. lint (eslint + tsc) and unit tests (node:test, no VS Code needed);
#   2. the packaged .vsix installed into a real VS Code (code-server from npm) and driven by
#      playwright-core in Debian's Chromium against a real node running tests/fixtures/kv:
#      hover shows live state, an inlay hint shows the process count, code lens, tree view.
#      The debugger step (breakpoint + Step Back) runs with ORRERY_TEST_DAP=1.
#
#   editors/vscode/test.sh            # everything
#   editors/vscode/test.sh --unit     # lint, unit tests and the .vsix only
#   ORRERY=/path/to/orrery editors/vscode/test.sh   # another server binary
#
# Installs what it needs: Debian packages (apt-get, sudo when not root), npm packages
# (npm ci), code-server into editors/vscode/.test/ (gitignored). Screenshots and logs go to
# editors/vscode/.test/artifacts/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
EXT=$(pwd)
REPO=$(cd ../.. && pwd)
TEST=$EXT/.test
CODE_SERVER_VERSION=4.100.3
RG_CACHE_VERSION=1.15.11
RG_TARBALL=ripgrep-v13.0.0-10-x86_64-unknown-linux-musl.tar.gz
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
UNIT_ONLY=0
[ "${1:-}" = "--unit" ] && UNIT_ONLY=1
start=$(date +%s)
step() { printf '\n== %s (%ss)\n' "$*" "$(( $(date +%s) - start ))"; }

# ---- system packages -------------------------------------------------------------------
missing=()
if [ "$UNIT_ONLY" = 0 ]; then
  dpkg -s libkrb5-dev >/dev/null 2>&1 || missing+=(libkrb5-dev)
  command -v rg >/dev/null || missing+=(ripgrep)
  command -v chromium >/dev/null || missing+=(chromium)
  { command -v make >/dev/null && command -v g++ >/dev/null; } || missing+=(build-essential)
  command -v python3 >/dev/null || missing+=(python3)
  { command -v elixir >/dev/null && command -v erl >/dev/null; } || missing+=(erlang elixir)
fi
if [ ${#missing[@]} -gt 0 ]; then
  step "apt-get install ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# ---- npm dependencies, lint, unit tests, .vsix -------------------------------------------
mkdir -p "$TEST/artifacts"
step "build the .vsix"
./build.sh "$TEST/orrery.vsix"
step "lint (eslint, tsc)"
npm run -s lint
step "unit tests"
npm run -s test:unit
if [ "$UNIT_ONLY" = 1 ]; then
  step "done (unit only)"
  exit 0
fi

# ---- the server binary -------------------------------------------------------------------
ORRERY=${ORRERY:-$REPO/target/release/orrery}
if [ ! -x "$ORRERY" ] && [ "$ORRERY" = "$REPO/target/release/orrery" ]; then
  step "cargo build --release (no $ORRERY yet)"
  (cd "$REPO" && cargo build --release)
fi

# ---- code-server (from npm, into .test/code-server) -------------------------------------
CS_DIR=$TEST/code-server
CODE_SERVER=$CS_DIR/node_modules/.bin/code-server
if [ ! -x "$CODE_SERVER" ] || [ "$(node -p "require('$CS_DIR/node_modules/code-server/package.json').version" 2>/dev/null)" != "$CODE_SERVER_VERSION" ]; then
  step "npm install code-server@$CODE_SERVER_VERSION (into .test/code-server)"
  # Its postinstall downloads ripgrep from GitHub unless this cache is seeded.
  tmp=$(node -p 'require("os").tmpdir()')
  mkdir -p "$tmp/vscode-ripgrep-cache-$RG_CACHE_VERSION"
  [ -f "$tmp/vscode-ripgrep-cache-$RG_CACHE_VERSION/$RG_TARBALL" ] ||
    tar czf "$tmp/vscode-ripgrep-cache-$RG_CACHE_VERSION/$RG_TARBALL" -C "$(dirname "$(command -v rg)")" rg
  rm -rf "$CS_DIR"
  mkdir -p "$CS_DIR"
  echo '{"name":"orrery-test-code-server","private":true}' > "$CS_DIR/package.json"
  # npm_config_yes: its postinstall runs `npx node-gyp`, which npm 11 would refuse.
  (cd "$CS_DIR" && npm_config_yes=true npm_config_unsafe_perm=true \
     npm install --no-audit --no-fund --no-package-lock --loglevel=error "code-server@$CODE_SERVER_VERSION" \
     > "$TEST/code-server-install.log" 2>&1) || {
       tail -40 "$TEST/code-server-install.log" >&2
       echo "test.sh: installing code-server failed (log: $TEST/code-server-install.log)" >&2
       exit 1
     }
fi

# ---- acceptance --------------------------------------------------------------------------
step "acceptance test in code-server + Chromium"
node test/acceptance/run.mjs --vsix "$TEST/orrery.vsix" --code-server "$CODE_SERVER" --orrery "$ORRERY" --chromium "$(command -v chromium)"
step "done"
