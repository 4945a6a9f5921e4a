#!/usr/bin/env bash
# services.sh starts the services Herald's tests and dev server need, and is
# safe to run again: it only starts what is not already answering.
#
#   Redis       127.0.0.1:6379 (redis-server --daemonize, no persistence)
#   ClickHouse  127.0.0.1:${HERALD_CLICKHOUSE_PORT:-9000} native,
#               127.0.0.1:${HERALD_CLICKHOUSE_HTTP_PORT:-8123} HTTP,
#               user "default" with an empty password.
#
# ClickHouse runs from our own config in .data/clickhouse/ (config.xml,
# users.xml); its data, tmp, log, user_files and format_schemas folders all live
# there too, owned by the clickhouse user. Delete .data/clickhouse/ (after
# stopping the server) to start from empty. Packages come from apt (Debian's
# clickhouse-server is 18.16) and are installed when missing (needs root).
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ch_port=${HERALD_CLICKHOUSE_PORT:-9000}
ch_http_port=${HERALD_CLICKHOUSE_HTTP_PORT:-8123}
ch_dir="$repo_root/.data/clickhouse"
ch_user=clickhouse

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

# pkg_installed reports whether a Debian package is fully installed.
pkg_installed() {
	dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
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

ch_up() { clickhouse-client --host 127.0.0.1 --port "$ch_port" -q 'SELECT 1' >/dev/null 2>&1; }

# ch_pid_alive reports whether the pid file names a live (not zombie)
# clickhouse-server process.
ch_pid_alive() {
	local pid
	pid=$(cat "$1" 2>/dev/null) || return 1
	[[ "$pid" =~ ^[0-9]+$ ]] || return 1
	[[ $(cat "/proc/$pid/comm" 2>/dev/null) == clickhouse* ]] || return 1
	# Field 3 of /proc/PID/stat is the state; Z is a zombie awaiting its reaper.
	[[ $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) != Z ]]
}

ensure_clickhouse_installed() {
	if pkg_installed clickhouse-server && pkg_installed clickhouse-client; then
		return
	fi
	apt_install clickhouse-server clickhouse-client
	# Debian's package enables a systemd unit using /etc/clickhouse-server;
	# we never start that one, only our own below.
}

# ensure_traversable makes sure the clickhouse user can reach $ch_dir: every
# parent folder needs the execute bit for it. Where one lacks it we add o+x
# (search only, not read) and say so.
ensure_traversable() {
	mkdir -p "$ch_dir"
	local d="$ch_dir"
	local parents=()
	while [[ "$d" != "/" ]]; do
		d=$(dirname "$d")
		parents+=("$d")
	done
	local p
	for p in "${parents[@]}"; do
		if ! runuser -u "$ch_user" -- test -x "$p" 2>/dev/null; then
			log "the $ch_user user cannot enter $p: running chmod o+x $p (search permission only) so ClickHouse can use $ch_dir"
			as_root chmod o+x "$p" || die "chmod o+x $p failed: move the repo somewhere the $ch_user user can reach, or fix the permissions of $p"
		fi
	done
}

write_clickhouse_config() {
	mkdir -p "$ch_dir"/{data,tmp,user_files,format_schemas,log}
	# Written every run (cheap, and picks up a changed port); the server reads
	# it only at start-up. Root element is <yandex> as 18.16 requires (newer
	# servers accept it too).
	cat >"$ch_dir/config.xml.new" <<EOF
<?xml version="1.0"?>
<!-- Written by scripts/services.sh; edits are overwritten. -->
<yandex>
    <logger>
        <level>warning</level>
        <log>$ch_dir/log/clickhouse-server.log</log>
        <errorlog>$ch_dir/log/clickhouse-server.err.log</errorlog>
        <size>100M</size>
        <count>3</count>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <tcp_port>$ch_port</tcp_port>
    <http_port>$ch_http_port</http_port>
    <max_connections>1024</max_connections>
    <keep_alive_timeout>3</keep_alive_timeout>
    <max_concurrent_queries>100</max_concurrent_queries>
    <uncompressed_cache_size>536870912</uncompressed_cache_size>
    <mark_cache_size>536870912</mark_cache_size>
    <path>$ch_dir/data/</path>
    <tmp_path>$ch_dir/tmp/</tmp_path>
    <user_files_path>$ch_dir/user_files/</user_files_path>
    <format_schema_path>$ch_dir/format_schemas/</format_schema_path>
    <users_config>$ch_dir/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mlock_executable>false</mlock_executable>
    <builtin_dictionaries_reload_interval>3600</builtin_dictionaries_reload_interval>
    <max_session_timeout>3600</max_session_timeout>
    <default_session_timeout>60</default_session_timeout>
    <!-- Tests drop whole databases: no size guard. -->
    <max_table_size_to_drop>0</max_table_size_to_drop>
    <max_partition_size_to_drop>0</max_partition_size_to_drop>
</yandex>
EOF
	cat >"$ch_dir/users.xml.new" <<'EOF'
<?xml version="1.0"?>
<!-- Written by scripts/services.sh; edits are overwritten. -->
<yandex>
    <profiles>
        <default>
            <max_memory_usage>4000000000</max_memory_usage>
            <use_uncompressed_cache>0</use_uncompressed_cache>
            <load_balancing>random</load_balancing>
        </default>
    </profiles>
    <users>
        <default>
            <password></password>
            <networks>
                <ip>::1</ip>
                <ip>127.0.0.1</ip>
            </networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
    </users>
    <quotas>
        <default>
            <interval>
                <duration>3600</duration>
                <queries>0</queries>
                <errors>0</errors>
                <result_rows>0</result_rows>
                <read_rows>0</read_rows>
                <execution_time>0</execution_time>
            </interval>
        </default>
    </quotas>
</yandex>
EOF
	mv "$ch_dir/config.xml.new" "$ch_dir/config.xml"
	mv "$ch_dir/users.xml.new" "$ch_dir/users.xml"
	as_root chown -R "$ch_user:$ch_user" "$ch_dir"
}

ensure_clickhouse() {
	ensure_clickhouse_installed
	if ch_up; then
		log "ClickHouse already answers at 127.0.0.1:$ch_port (reusing it)"
		return
	fi
	id "$ch_user" >/dev/null 2>&1 || die "user $ch_user does not exist: reinstall clickhouse-server (apt-get install --reinstall clickhouse-server)"
	if ss -ltn "sport = :$ch_port" 2>/dev/null | grep -q LISTEN; then
		die "port $ch_port is taken by something that is not ClickHouse answering SELECT 1 (see: ss -ltnp 'sport = :$ch_port'); stop it or set HERALD_CLICKHOUSE_PORT and HERALD_CLICKHOUSE_ADDR"
	fi
	ensure_traversable
	write_clickhouse_config
	local pidfile="$ch_dir/clickhouse-server.pid"
	local started=0 i
	for i in $(seq 1 60); do
		if ch_up; then
			log "ClickHouse is up at 127.0.0.1:$ch_port after ${i} s"
			return
		fi
		if ! ch_pid_alive "$pidfile"; then
			if [[ $started -eq 1 ]]; then
				log "clickhouse-server exited; last lines of $ch_dir/log/clickhouse-server.err.log:"
				tail -n 20 "$ch_dir/log/clickhouse-server.err.log" >&2 2>/dev/null || true
				die "clickhouse-server exited during start-up: read $ch_dir/log/clickhouse-server.err.log and $ch_dir/log/stderr.log, fix the cause, then run this script again"
			fi
			rm -f "$pidfile"
			log "starting clickhouse-server with $ch_dir/config.xml (logs in $ch_dir/log/)"
			(cd "$ch_dir" && as_root runuser -u "$ch_user" -- clickhouse-server \
				--config-file="$ch_dir/config.xml" --pid-file="$pidfile" --daemon) ||
				die "clickhouse-server failed to start: see $ch_dir/log/clickhouse-server.err.log"
			started=1
		elif [[ $i -eq 1 ]]; then
			log "clickhouse-server (pid $(cat "$pidfile")) is running from $ch_dir but not answering yet; waiting for it"
		fi
		if ((i % 5 == 0)); then log "waiting for ClickHouse on 127.0.0.1:$ch_port ... ${i} s"; fi
		sleep 1
	done
	log "last lines of $ch_dir/log/clickhouse-server.err.log:"
	tail -n 20 "$ch_dir/log/clickhouse-server.err.log" >&2 2>/dev/null || true
	die "ClickHouse did not answer within 60 s: read $ch_dir/log/clickhouse-server.err.log; to retry from scratch stop it (kill \$(cat $pidfile)), remove $ch_dir and run this script again"
}

ensure_redis
ensure_clickhouse

log "redis:      $(redis-cli -h 127.0.0.1 -p 6379 INFO server | awk -F: '/^redis_version/ {print $2}' | tr -d '\r') at 127.0.0.1:6379"
log "clickhouse: $(clickhouse-client --host 127.0.0.1 --port "$ch_port" -q 'SELECT version()') at 127.0.0.1:$ch_port (HTTP $ch_http_port), user default, data in $ch_dir"
log "ready"
