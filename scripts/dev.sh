#!/usr/bin/env bash
# dev.sh runs Herald locally: it starts Redis and ClickHouse (services.sh),
# builds bin/herald, applies the migrations and starts `herald dev` in the
# background (log .herald/dev.log, pid .herald/dev.pid), unless one already
# answers on http://127.0.0.1:8080/healthz. It then prints the URL and the
# API key that `herald dev` writes to .herald/dev.env.
# Stop it with: kill "$(cat .herald/dev.pid)"
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_root"

url=http://127.0.0.1:8080
state_dir=.herald
log_file=$state_dir/dev.log
pid_file=$state_dir/dev.pid
env_file=$state_dir/dev.env

log() { printf 'dev: %s\n' "$*"; }
die() {
	printf 'dev: error: %s\n' "$*" >&2
	exit 1
}
healthy() { curl -fsS --max-time 2 "$url/healthz" >/dev/null 2>&1; }

bash scripts/services.sh || die "services did not start (see above); fix that and run scripts/dev.sh again"

mkdir -p "$state_dir" bin
bash scripts/web.sh || die "the dashboard did not build (see above); fix that and run scripts/dev.sh again"
log "go build -o bin/herald ./cmd/herald"
go build -o bin/herald ./cmd/herald || die "build failed: fix the errors above and run scripts/dev.sh again"

log "bin/herald migrate"
bin/herald migrate || die "migrations failed: see the error above"

if healthy; then
	log "herald dev already answers at $url/healthz (pid $(cat "$pid_file" 2>/dev/null || echo unknown)); not starting another (restart: kill \"\$(cat $pid_file)\" and run this again)"
else
	if [[ -f "$pid_file" ]] && kill -0 "$(cat "$pid_file")" 2>/dev/null &&
		grep -q "herald" "/proc/$(cat "$pid_file")/cmdline" 2>/dev/null; then
		# It may be starting up or shutting down (a stop takes up to ~10 s).
		log "herald dev (pid $(cat "$pid_file")) exists but does not answer yet; waiting up to 20 s"
		for i in $(seq 1 40); do
			healthy && break
			kill -0 "$(cat "$pid_file")" 2>/dev/null || break
			sleep 0.5
		done
		if kill -0 "$(cat "$pid_file")" 2>/dev/null && ! healthy; then
			die "herald dev (pid $(cat "$pid_file")) is running but $url/healthz does not answer: see $log_file, stop it with kill $(cat "$pid_file"), then run this again"
		fi
	fi
	if healthy; then
		log "herald dev answers at $url/healthz"
		cat "$env_file"
		exit 0
	fi
	log "starting bin/herald dev (log: $log_file)"
	nohup bin/herald dev >>"$log_file" 2>&1 </dev/null &
	echo $! >"$pid_file"
	pid=$(cat "$pid_file")
	for i in $(seq 1 60); do
		healthy && break
		kill -0 "$pid" 2>/dev/null || {
			tail -n 20 "$log_file" >&2 || true
			die "herald dev exited during start-up: see $log_file"
		}
		if ((i % 5 == 0)); then log "waiting for $url/healthz ... ${i} s"; fi
		sleep 1
	done
	healthy || die "herald dev did not answer $url/healthz within 60 s: see $log_file (stop it with kill $pid)"
	log "herald dev is up (pid $pid)"
fi

log "Herald: $url"
if [[ -f "$env_file" ]]; then
	log "$env_file:"
	cat "$env_file"
else
	log "$env_file is missing: herald dev should have written HERALD_URL and HERALD_API_KEY there"
fi
