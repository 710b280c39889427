#!/usr/bin/env bash
# The second pass, on Node.js 24 (the current LTS, and what the Docker images ship), after the
# whole suite ran on the machine's Node (test/prerequisites.sh fetched 24). Test processes spawned
# with process.execPath run on 24 too.
#
# Not the whole suite again: that doubled the run (a fresh-clone .ci/run took 23-31 minutes on a
# slow day). It runs what depends on the Node version rather than on docsift's logic:
#   - the unit tests, less the decoder's, which is llama.cpp arithmetic through node-llama-cpp's
#     N-API addon (ABI-stable across Node versions), and the client's types under five
#     moduleResolution settings (TypeScript's resolution, not Node's); the first pass runs both;
#   - native addons and WebAssembly loaded for real: llama.cpp end to end (pipeline), the canvas,
#     koffi and libtesseract, tesseract.js (ocr);
#   - OS memory caps, which V8's address-space reservation changes (faults, hostile; the PDF
#     child's are in the unit tests): Node 24 maps ~575 MB more at start (README);
#   - fastify and the two dependencies that want Node 22 (api, apiContract, the board in Chromium),
#     multipart streams under a memory bound (uploadMemory), webhooks through Node's fetch
#     (callbacks), and `docsift up` (the README's main job).
set -euo pipefail
NODE24_VERSION=24.22.3
node24="${XDG_CACHE_HOME:-$HOME/.cache}/docsift/node-$NODE24_VERSION/node"
if [ -n "${DOCSIFT_SKIP_NODE24:-}" ] || [ ! -x "$node24" ]; then
  echo "on-node24: skipped (DOCSIFT_SKIP_NODE24 set, or not linux-x64)" >&2
  exit 0
fi
echo "== the Node-dependent tests on Node.js $("$node24" --version)" >&2
exec "$node24" node_modules/vitest/vitest.mjs run --exclude test/unit/model/decoder.test.ts --exclude test/unit/clientTypes.test.ts \
  test/unit \
  test/integration/pipeline.test.ts test/integration/ocr.test.ts \
  test/integration/faults.test.ts test/integration/hostile.test.ts \
  test/integration/api.test.ts test/integration/apiContract.test.ts test/integration/board.browser.test.ts \
  test/integration/uploadMemory.test.ts test/integration/callbacks.test.ts test/integration/up.test.ts \
  "$@"
