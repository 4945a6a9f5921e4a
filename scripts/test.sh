#!/usr/bin/env bash
# test.sh is what CI runs (.ci/run): it starts Redis and ClickHouse
# (services.sh), then vets and tests every package. Extra arguments go to
# `go test`, e.g. `bash scripts/test.sh -run TestMigrate -v`.
#
# Another chDB engine: HERALD_CHDB_VERSION=26.7.0-stable.1 bash scripts/test.sh (26.7 or
# later: 26.5 cannot serve)
# (services.sh restarts the embedded ClickHouse with it, on the same data).
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_root"
export HERALD_CLICKHOUSE_ADDR=${HERALD_CLICKHOUSE_ADDR:-127.0.0.1:${HERALD_CLICKHOUSE_PORT:-9000}}

log() { printf 'test: %s\n' "$*"; }
fail() {
	printf 'test: FAILED: %s (ClickHouse: %s)\n' "$*" "$(clickhouse_tested)" >&2
	exit 1
}

# clickhouse_tested names the ClickHouse the tests use: its version (native
# protocol) and, when it is the embedded one, the chDB package version.
clickhouse_tested() {
	local herald=.data/chdb/herald version chdb
	[[ -x "$herald" ]] || herald="go run ./cmd/herald"
	version=$($herald clickhouse version --addr "$HERALD_CLICKHOUSE_ADDR" 2>/dev/null) || version="not answering"
	chdb=$(sed -n 's/^ *"chdb_version": *"\([^"]*\)".*/\1/p' .data/clickhouse/state.json 2>/dev/null)
	if [[ -n "$chdb" && "$HERALD_CLICKHOUSE_ADDR" == "127.0.0.1:${HERALD_CLICKHOUSE_PORT:-9000}" ]]; then
		echo "$version (embedded, chDB $chdb) at $HERALD_CLICKHOUSE_ADDR"
	else
		echo "$version at $HERALD_CLICKHOUSE_ADDR"
	fi
}

start=$SECONDS
bash scripts/services.sh || fail "services did not start (see above); fix that and run scripts/test.sh again"
log "testing against ClickHouse $(clickhouse_tested)"
bash scripts/web.sh || fail "the dashboard did not build (see above)"
log "web unit tests (node --test web/test)"
(cd web && npm test --silent) || fail "web unit tests (see above)"
if ! command -v chromium >/dev/null; then
	# The browser tests drive Debian's Chromium (server/web_e2e_test.go).
	log "apt-get install chromium (for the browser tests)"
	if [[ $(id -u) -eq 0 ]]; then apt_get=(apt-get); else apt_get=(sudo apt-get); fi
	DEBIAN_FRONTEND=noninteractive "${apt_get[@]}" install -y -q chromium >/dev/null ||
		{ "${apt_get[@]}" update -q >/dev/null && DEBIAN_FRONTEND=noninteractive "${apt_get[@]}" install -y -q chromium >/dev/null; } ||
		fail "cannot install chromium: run apt-get install chromium and scripts/test.sh again"
fi

if [[ -f gqlgen.yml ]]; then
	log "go tool gqlgen generate (must be a no-op)"
	go tool gqlgen generate || fail "gqlgen generate failed"
	if command -v git >/dev/null 2>&1 && git rev-parse --git-dir >/dev/null 2>&1; then
		git diff --exit-code -- graph/ ||
			fail "generated GraphQL code is out of date: run 'go tool gqlgen generate' and commit the result"
		untracked=$(git ls-files --others --exclude-standard -- graph/)
		[[ -z "$untracked" ]] ||
			fail "gqlgen generated files that are not committed: $untracked; commit them"
	else
		log "not a git checkout: cannot check that gqlgen generate is a no-op"
	fi
else
	log "no gqlgen.yml: skipping the gqlgen regeneration check"
fi

log "go vet ./..."
go vet ./... || fail "go vet"
go vet -tags chfault ./server/ || fail "go vet -tags chfault"

log "go test -count=1 -timeout 20m ./... $*"
go test -count=1 -timeout 20m ./... "$@" || fail "go test"

# This fault test stops the shared ClickHouse, so it runs alone, after the rest.
log "fault test: stop ClickHouse while reports are accepted (go test -tags chfault)"
go test -count=1 -tags chfault -run TestReportsSurviveClickHouseStop ./server/ || fail "ClickHouse fault test"

log "all passed in $((SECONDS - start)) s against ClickHouse $(clickhouse_tested)"
