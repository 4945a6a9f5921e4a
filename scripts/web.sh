#!/usr/bin/env bash
# web.sh builds the dashboard (web/, Vite + Preact) into web/dist, which
# the Go binary embeds: dependencies from npm (pinned by
# web/package-lock.json) into web/node_modules, then `vite build`.
# Idempotent: installs again only when the lock file changed. dev.sh and
# test.sh run it; a `go build` without it serves a page saying to run it.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_root/web"
log() { printf 'web: %s\n' "$*"; }
die() { printf 'web: FAILED: %s\n' "$*" >&2; exit 1; }

command -v npm >/dev/null || die "npm is not installed: apt-get install -y nodejs npm (Node.js 20 or later), then run scripts/web.sh again"
if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
	log "npm ci (web/node_modules)"
	npm ci --no-audit --no-fund --loglevel=error || die "npm ci failed (see above): the npm registry must be reachable"
fi
log "vite build → web/dist"
find dist -mindepth 1 ! -name .gitkeep -delete # no stale hashed assets
npx vite build --logLevel warn || die "vite build failed (see above)"
log "built: $(du -sh dist | cut -f1) in web/dist"
