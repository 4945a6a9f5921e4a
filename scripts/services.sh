#!/usr/bin/env bash
# services.sh starts the services Herald's tests and dev server need, and is
# safe to run again: it only starts what is not already answering.
#
#   bash scripts/services.sh [start]   start Redis and ClickHouse (the default)
#   bash scripts/services.sh stop      stop the embedded ClickHouse (Redis is left running)
#   bash scripts/services.sh status    say what runs
#
#   Redis       127.0.0.1:6379 (redis-server --daemonize, no persistence)
#   ClickHouse  127.0.0.1:${HERALD_CLICKHOUSE_PORT:-9000} native (through herald's proxy),
#               127.0.0.1:${HERALD_CLICKHOUSE_HTTP_PORT:-8123} HTTP,
#               user "default" with an empty password, time zone UTC.
#
# ClickHouse is embedded: chDB's engine (the npm package @chdb/lib-linux-x64-gnu,
# version scripts/chdb/version or $HERALD_CHDB_VERSION, e.g. 26.7.0-stable.1;
# serving needs 26.7 or later: 26.5's clickhouse-local cannot listen), unpacked
# into .data/chdb/<version>/, loaded by .data/chdb/chserve (built from
# scripts/chdb/chserve.c) and supervised by `herald clickhouse serve`
# (.data/chdb/herald, built from this checkout), which runs detached. Data,
# logs and state live in .data/clickhouse/: data/, log/ (supervisor.log,
# engine.log, clickhouse.log and clickhouse.err.log), state.json,
# supervisor.pid. Stop it (above) and delete .data/clickhouse/ to start from
# empty. When HERALD_CLICKHOUSE_ADDR names another server, none is started.
# Missing tools (npm, a C compiler, curl, redis-server) are installed with apt
# (needs root); Go must be on PATH.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ch_port=${HERALD_CLICKHOUSE_PORT:-9000}
ch_http_port=${HERALD_CLICKHOUSE_HTTP_PORT:-8123}
ch_addr=${HERALD_CLICKHOUSE_ADDR:-127.0.0.1:$ch_port}
ch_dir="$repo_root/.data/clickhouse"
pid_file="$ch_dir/supervisor.pid"
state_file="$ch_dir/state.json"
chdb_root="$repo_root/.data/chdb"
chdb_version=${HERALD_CHDB_VERSION:-$(cat "$repo_root/scripts/chdb/version")}
chdb_package=${HERALD_CHDB_PACKAGE:-@chdb/lib-linux-x64-gnu}
engine_dir="$chdb_root/$chdb_version"
loader="$chdb_root/chserve"
supervisor="$chdb_root/herald"

log() { printf 'services: %s\n' "$*"; }
die() {
	printf 'services: error: %s\n' "$*" >&2
	exit 1
}

as_root() {
	if [[ $(id -u) -eq 0 ]]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo "$@"
	else
		die "need root to run: $* (run this script as root, or install sudo)"
	fi
}

apt_updated=0
apt_install() {
	command -v apt-get >/dev/null 2>&1 || die "apt-get not found: install $* by hand, then run this script again"
	export DEBIAN_FRONTEND=noninteractive
	# Wait for another apt/dpkg (for example an install already in progress)
	# instead of failing on its lock.
	local lock=(-o DPkg::Lock::Timeout=900)
	if [[ $apt_updated -eq 0 ]]; then
		log "apt-get update (waits for any apt already running)"
		as_root env DEBIAN_FRONTEND=noninteractive apt-get "${lock[@]}" update -q ||
			die "apt-get update failed: check the network and /etc/apt/sources.list, then run this script again"
		apt_updated=1
	fi
	log "apt-get install $*"
	as_root env DEBIAN_FRONTEND=noninteractive apt-get "${lock[@]}" install -y -q \
		-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@" </dev/null ||
		die "apt-get install $* failed: see the output above, fix it, then run this script again"
}

# need CMD PACKAGES...: installs the Debian packages when CMD is missing.
need() {
	local cmd=$1
	shift
	command -v "$cmd" >/dev/null 2>&1 && return
	log "$cmd not found: installing $* with apt"
	apt_install "$@"
	command -v "$cmd" >/dev/null 2>&1 || die "$cmd is still missing after apt-get install $*: install it by hand, then run this script again"
}

# ---------------------------------------------------------------- Redis

redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }

ensure_redis() {
	if command -v redis-cli >/dev/null 2>&1 && redis_up; then
		log "Redis already answers at 127.0.0.1:6379"
		return
	fi
	if ! command -v redis-server >/dev/null 2>&1; then
		apt_install redis-server
	fi
	log "starting Redis on 127.0.0.1:6379"
	as_root mkdir -p /var/lib/redis /var/log/redis
	if id redis >/dev/null 2>&1; then as_root chown redis:redis /var/lib/redis /var/log/redis || true; fi
	redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
		--dir /var/lib/redis --logfile /var/log/redis/ci.log ||
		die "redis-server failed to start: see /var/log/redis/ci.log"
	for _ in $(seq 1 50); do
		redis_up && { log "Redis is up"; return; }
		sleep 0.2
	done
	die "Redis did not answer within 10 s: see /var/log/redis/ci.log (is port 6379 taken? ss -ltnp 'sport = :6379')"
}

# ---------------------------------------------------------------- ClickHouse

# chdb_integrity prints npm's sha512 of the pinned package versions (from
# `npm view @chdb/lib-linux-x64-gnu@VERSION dist.integrity`), "" for others.
chdb_integrity() {
	case "$chdb_package@$1" in
	@chdb/lib-linux-x64-gnu@26.7.3-stable.1) echo 'sha512-XP97mMqnc5tZpKQywR8N7cLTsHNiTmHr30pC5mzo3jWmukjKn2IBa60c2B/gWUNcuFjOMjWoorQICCqBVj5wpw==' ;;
	@chdb/lib-linux-x64-gnu@26.7.0-stable.1) echo 'sha512-9DYZmFeyuh5uvDSQ0Eh7ff4EwxdIP1WmUGTX6DeaSWtQWVn8+ELs84uKxalN2nM5yZxvs82NzW+snOE0gk8Fzg==' ;;
	*) echo '' ;;
	esac
}

# json_field FILE NAME prints a top-level scalar of a flat JSON file.
json_field() {
	sed -n "s/^ *\"$2\": *\"\{0,1\}\([^\",]*\)\"\{0,1\},\{0,1\} *$/\1/p" "$1" 2>/dev/null | head -n 1
}

ch_http() { curl -fsS --max-time 5 "http://127.0.0.1:$ch_http_port/" --data-binary "$1"; }

# port_busy reports whether something accepts connections on a loopback port.
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# supervisor_pid prints the pid in $pid_file when it is a live
# `herald clickhouse serve`, and fails otherwise.
supervisor_pid() {
	local pid
	pid=$(cat "$pid_file" 2>/dev/null) || return 1
	[[ "$pid" =~ ^[0-9]+$ ]] || return 1
	tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'clickhouse serve' || return 1
	echo "$pid"
}

# engine_installed reports whether $engine_dir holds the wanted package.
engine_installed() {
	[[ -f "$engine_dir/libchdb.so" ]] && [[ $(json_field "$engine_dir/package.json" version) == "$chdb_version" ]]
}

# install_engine downloads chDB's engine with npm into $engine_dir, checks the
# tarball's checksum (pinned versions) and what it unpacks.
install_engine() {
	if engine_installed; then
		log "chDB engine $chdb_version already in $engine_dir"
		return
	fi
	need npm npm
	mkdir -p "$chdb_root"
	local tmp start integrity pinned
	tmp=$(mktemp -d "$chdb_root/.download.XXXXXX")
	start=$SECONDS
	log "downloading $chdb_package@$chdb_version with npm (about 180 MB; ~10 s on a fast link)"
	# A private npm cache: the tarball is not kept twice.
	(cd "$tmp" && npm pack --json --cache "$tmp/cache" --loglevel error "$chdb_package@$chdb_version" >pack.json) ||
		die "npm pack $chdb_package@$chdb_version failed (see above): check the registry answers (npm ping) and the version exists (npm view $chdb_package versions), then run this again"
	integrity=$(sed -n 's/^ *"integrity": *"\([^"]*\)".*/\1/p' "$tmp/pack.json" | head -n 1)
	pinned=$(chdb_integrity "$chdb_version")
	if [[ -n "$pinned" && "$integrity" != "$pinned" ]]; then
		rm -rf "$tmp"
		die "$chdb_package@$chdb_version has checksum $integrity, not the pinned $pinned: do not use it; report it"
	fi
	[[ -n "$pinned" ]] || log "no pinned checksum for $chdb_version in this script; npm checked the registry's: $integrity"
	log "downloaded in $((SECONDS - start)) s; unpacking libchdb.so"
	tar -xzf "$tmp"/*.tgz -C "$tmp" --no-same-owner package/libchdb.so package/package.json ||
		die "$tmp/*.tgz lacks package/libchdb.so or package/package.json: is $chdb_package the engine library?"
	check_unpacked "$tmp/package"
	rm -rf "$engine_dir"
	mv "$tmp/package" "$engine_dir"
	rm -rf "$tmp"
	log "chDB engine $chdb_version installed in $engine_dir ($(du -m "$engine_dir/libchdb.so" | cut -f1) MB)"
}

# check_unpacked DIR fails unless DIR holds the wanted package's ELF library.
check_unpacked() {
	local name version magic
	name=$(json_field "$1/package.json" name)
	version=$(json_field "$1/package.json" version)
	[[ "$name@$version" == "$chdb_package@$chdb_version" ]] ||
		die "the tarball's package.json says $name@$version, not $chdb_package@$chdb_version"
	magic=$(head -c 4 "$1/libchdb.so" | od -An -c | tr -d ' ')
	[[ "$magic" == '177ELF' ]] || die "$1/libchdb.so is not an ELF library"
	(($(stat -c %s "$1/libchdb.so") > 100000000)) || die "$1/libchdb.so is smaller than 100 MB: not the whole engine"
}

# build_loader compiles scripts/chdb/chserve.c when the binary is missing or older.
build_loader() {
	local src="$repo_root/scripts/chdb/chserve.c"
	if [[ -x "$loader" && "$loader" -nt "$src" ]]; then return; fi
	need cc gcc libc6-dev
	log "cc -O2 -o $loader scripts/chdb/chserve.c -ldl"
	mkdir -p "$chdb_root"
	cc -O2 -Wall -o "$loader.tmp" "$src" -ldl || die "building the loader failed (see above): a C compiler and libc headers are needed (apt-get install gcc libc6-dev)"
	mv "$loader.tmp" "$loader"
}

# build_supervisor builds this checkout's herald, which runs `clickhouse serve`.
build_supervisor() {
	command -v go >/dev/null 2>&1 || die "go not found: Herald needs Go 1.26 (https://go.dev/dl/) on PATH to build its ClickHouse supervisor"
	log "go build -o $supervisor ./cmd/herald (the ClickHouse supervisor)"
	(cd "$repo_root" && go build -o "$supervisor.tmp" ./cmd/herald) || die "go build failed: fix the errors above and run this again"
	mv "$supervisor.tmp" "$supervisor"
}

# move_old_layout moves aside a .data/clickhouse/ that Debian's 18.16
# clickhouse-server used (our old config.xml is there): 26.x starts afresh.
move_old_layout() {
	[[ -f "$ch_dir/config.xml" ]] || return 0
	local old_pid aside
	old_pid=$(cat "$ch_dir/clickhouse-server.pid" 2>/dev/null || true)
	if [[ "$old_pid" =~ ^[0-9]+$ ]] && [[ $(cat "/proc/$old_pid/comm" 2>/dev/null) == clickhouse* ]]; then
		die "the old Debian clickhouse-server (pid $old_pid) still runs from $ch_dir: stop it (kill $old_pid), then run this again"
	fi
	aside="$repo_root/.data/clickhouse-18.16-$(date +%Y%m%d%H%M%S)"
	mv "$ch_dir" "$aside"
	log "moved the data of Debian's old ClickHouse 18.16 to $aside (delete it when you no longer need it)"
}

# ch_ready reports whether the embedded server answers: state.json says the
# engine is ready and a native-protocol query through the proxy works.
ch_ready() {
	[[ $(json_field "$state_file" ready) == true ]] && "$supervisor" clickhouse version --addr "127.0.0.1:$ch_port" >/dev/null 2>&1
}

# wait_ready waits for the supervisor in $pid_file to serve.
wait_ready() {
	local i
	for i in $(seq 1 180); do
		ch_ready && return
		if ! supervisor_pid >/dev/null; then
			tail -n 20 "$ch_dir/log/supervisor.log" >&2 2>/dev/null || true
			die "the ClickHouse supervisor exited (see above and $ch_dir/log/): fix the cause, then run this again"
		fi
		if ((i % 10 == 0)); then log "waiting for ClickHouse on 127.0.0.1:$ch_port ... $((i / 2)) s"; fi
		sleep 0.5
	done
	die "ClickHouse did not answer within 90 s: see $ch_dir/log/supervisor.log and $ch_dir/log/clickhouse.err.log; stop it with: bash scripts/services.sh stop"
}

# launch starts `herald clickhouse serve` detached, in its own session.
launch() {
	mkdir -p "$ch_dir/log"
	log "starting the embedded ClickHouse: chDB $chdb_version on 127.0.0.1:$ch_port (HTTP $ch_http_port), data in $ch_dir (log: $ch_dir/log/supervisor.log)"
	rm -f "$pid_file" "$state_file"
	setsid nohup "$supervisor" clickhouse serve --lib "$engine_dir/libchdb.so" --loader "$loader" \
		--dir "$ch_dir" --port "$ch_port" --http-port "$ch_http_port" >>"$ch_dir/log/supervisor.log" 2>&1 </dev/null &
	local i
	for i in $(seq 1 100); do
		supervisor_pid >/dev/null && return
		sleep 0.1
	done
	tail -n 20 "$ch_dir/log/supervisor.log" >&2 2>/dev/null || true
	die "herald clickhouse serve did not start (see above)"
}

# foreign_clickhouse reports (and prints the version of) a ClickHouse on our
# HTTP port that this checkout did not start.
foreign_clickhouse() { ch_http 'SELECT version()' 2>/dev/null; }

# check_ports fails when a port we need is taken.
check_ports() {
	local p
	for p in "$ch_port" "$ch_http_port"; do
		if port_busy "$p"; then
			die "port $p is taken (see: ss -ltnp 'sport = :$p'): stop what listens there, or choose other ports with HERALD_CLICKHOUSE_PORT and HERALD_CLICKHOUSE_HTTP_PORT"
		fi
	done
}

# running_matches reports whether the running supervisor serves the wanted
# version on the wanted ports.
running_matches() {
	[[ $(json_field "$state_file" chdb_version) == "$chdb_version" &&
		$(json_field "$state_file" port) == "$ch_port" &&
		$(json_field "$state_file" http_port) == "$ch_http_port" ]]
}

ensure_clickhouse() {
	if [[ "$ch_addr" != "127.0.0.1:$ch_port" ]]; then
		log "HERALD_CLICKHOUSE_ADDR=$ch_addr: using that ClickHouse; not starting the embedded one"
		return
	fi
	move_old_layout
	need curl curl
	if supervisor_pid >/dev/null && running_matches; then
		wait_ready
		log "the embedded ClickHouse already runs (supervisor pid $(supervisor_pid)); reusing it"
		return
	fi
	local version
	if ! ours_on_http_port && version=$(foreign_clickhouse); then
		[[ -z "${HERALD_CHDB_VERSION:-}" ]] ||
			die "ClickHouse $version, not started by this checkout, answers on HTTP port $ch_http_port, so chDB $chdb_version cannot be started there: stop it, or use other ports (HERALD_CLICKHOUSE_PORT, HERALD_CLICKHOUSE_HTTP_PORT)"
		log "ClickHouse $version, not started by this checkout, already answers on 127.0.0.1:$ch_http_port (HTTP); reusing it"
		return
	fi
	if supervisor_pid >/dev/null; then
		log "the embedded ClickHouse runs chDB $(json_field "$state_file" chdb_version) on port $(json_field "$state_file" port) (HTTP $(json_field "$state_file" http_port)); restarting it with chDB $chdb_version on $ch_port (HTTP $ch_http_port), same data"
		stop_clickhouse
	fi
	check_ports
	install_engine
	build_loader
	build_supervisor
	launch
	wait_ready
	log "ClickHouse is up: $(json_field "$state_file" version) (chDB $chdb_version), engine pid $(json_field "$state_file" engine_pid)"
}

# ours_on_http_port reports whether this checkout's supervisor serves $ch_http_port.
ours_on_http_port() {
	supervisor_pid >/dev/null && [[ $(json_field "$state_file" http_port) == "$ch_http_port" ]]
}

# stop_clickhouse stops the supervisor named in $pid_file: it stops the engine
# cleanly (KILL QUERY on its holder query, SIGKILL after 30 s) and exits.
stop_clickhouse() {
	local pid start
	if ! pid=$(supervisor_pid); then
		log "the embedded ClickHouse is not running (no live $pid_file)"
		return
	fi
	start=$SECONDS
	log "stopping the embedded ClickHouse (supervisor pid $pid)"
	kill -TERM "$pid"
	while kill -0 "$pid" 2>/dev/null; do
		if ((SECONDS - start > 60)); then
			die "the supervisor (pid $pid) did not stop within 60 s: see $ch_dir/log/supervisor.log; kill -KILL $pid ends it and its engine"
		fi
		sleep 0.1
	done
	log "stopped in $((SECONDS - start)) s"
}

print_status() {
	local version
	if [[ "$ch_addr" != "127.0.0.1:$ch_port" ]]; then
		log "clickhouse: external, HERALD_CLICKHOUSE_ADDR=$ch_addr"
	elif supervisor_pid >/dev/null; then
		log "clickhouse: $(ch_http 'SELECT version()' 2>/dev/null || echo 'not answering') (chDB $(json_field "$state_file" chdb_version), embedded) at 127.0.0.1:$ch_port (HTTP $ch_http_port), user default, data in $ch_dir; supervisor pid $(supervisor_pid), engine pid $(json_field "$state_file" engine_pid), restarts $(json_field "$state_file" restarts)"
	elif version=$(foreign_clickhouse); then
		log "clickhouse: $version (not embedded: started elsewhere) at 127.0.0.1:$ch_port (HTTP $ch_http_port)"
	else
		log "clickhouse: the embedded one is not running"
	fi
}

case "${1:-start}" in
start)
	ensure_redis
	ensure_clickhouse
	log "redis:      $(redis-cli -h 127.0.0.1 -p 6379 INFO server | awk -F: '/^redis_version/ {print $2}' | tr -d '\r') at 127.0.0.1:6379"
	print_status
	log "ready"
	;;
stop) stop_clickhouse ;;
status) print_status ;;
*) die "unknown command '$1': use start (the default), stop or status" ;;
esac
