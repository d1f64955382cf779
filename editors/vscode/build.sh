#!/usr/bin/env bash
# Build the Orrery VS Code extension (.vsix). Offline once node_modules is installed.
#
#   editors/vscode/build.sh [OUT.vsix]     # default: editors/vscode/orrery.vsix
#
# Installs the npm dependencies from package-lock.json (npm ci) when they are missing or
# stale, bundles with esbuild and packages with @vscode/vsce.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
EXT=$(pwd)
OUT=${1:-$EXT/orrery.vsix}
case "$OUT" in /*) ;; *) OUT="$OLDPWD/$OUT" ;; esac

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "build.sh: node and npm are needed (Node 20 or newer)" >&2
  exit 1
fi
major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 20 ]; then
  echo "build.sh: Node $(node --version) is too old: need Node 20 or newer" >&2
  exit 1
fi

# npm ci when node_modules does not match package-lock.json.
stamp=node_modules/.orrery-lock.sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "== npm ci (editors/vscode)"
  npm ci --no-audit --no-fund --prefer-offline --loglevel=error
  echo "$want" > "$stamp"
fi

echo "== packaging $OUT"
mkdir -p "$(dirname "$OUT")"
npx --no-install vsce package --no-dependencies --out "$OUT"
