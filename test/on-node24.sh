#!/usr/bin/env bash
# The test suite again on Node.js 24 (the current LTS), after the run on the machine's Node
# (test/prerequisites.sh fetched it). Test processes spawned with process.execPath run on 24 too.
set -euo pipefail
NODE24_VERSION=24.22.3
node24="${XDG_CACHE_HOME:-$HOME/.cache}/docsift/node-$NODE24_VERSION/node"
if [ -n "${DOCSIFT_SKIP_NODE24:-}" ] || [ ! -x "$node24" ]; then
  echo "on-node24: skipped (DOCSIFT_SKIP_NODE24 set, or not linux-x64)" >&2
  exit 0
fi
echo "== the test suite on Node.js $("$node24" --version)" >&2
# Less the two files that are almost all llama.cpp arithmetic through node-llama-cpp's N-API addon
# (ABI-stable across Node versions) and took a fifth of this pass: the first pass runs them.
exec "$node24" node_modules/vitest/vitest.mjs run --exclude test/unit/model/decoder.test.ts --exclude test/integration/bench.test.ts "$@"
