#!/usr/bin/env bash
# Try docsift on this box in one command (npm run demo): a worker with DOCSIFT_MODEL (or, when
# unset, the generated test model, whose extractions are meaningless), the shared invoice corpus
# (or the files given) enqueued and waited for, one JSON result per line on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
docsift=(node dist/src/cli/main.js)
[ -f dist/src/cli/main.js ] || npm run build >/dev/null
if [ -z "${DOCSIFT_MODEL:-}" ]; then
  mkdir -p data
  export DOCSIFT_MODEL=data/test-model.gguf
  [ -f "$DOCSIFT_MODEL" ] || "${docsift[@]}" make-test-model "$DOCSIFT_MODEL"
  echo "DOCSIFT_MODEL is not set: using the generated test model (random weights, meaningless fields)." >&2
fi
# The worker would wait for Redis indefinitely; a try-out should say so at once instead.
url=${REDIS_URL:-redis://127.0.0.1:6379}
hostport=${url#*://}; hostport=${hostport#*@}; hostport=${hostport%%/*}
if ! (exec 3<>"/dev/tcp/${hostport%:*}/${hostport##*:}") 2>/dev/null; then
  echo "No Redis answers at $url. Start one (apt-get install redis-server), set REDIS_URL, or run 'npm start', which starts a private Redis." >&2
  exit 1
fi
files=("$@")
[ ${#files[@]} -gt 0 ] || files=(../shared/corpus/invoices/*.pdf)
mkdir -p data
"${docsift[@]}" worker --metrics-port 0 >data/demo-worker.log 2>&1 &
worker=$!
trap 'kill -TERM $worker 2>/dev/null; wait $worker 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do
  grep -q '"worker ready"' data/demo-worker.log 2>/dev/null && break
  kill -0 $worker 2>/dev/null || { cat data/demo-worker.log >&2; exit 1; }
  sleep 0.1
done
"${docsift[@]}" enqueue --wait --json "${files[@]}"
