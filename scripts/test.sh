#!/usr/bin/env bash
# test.sh is what CI runs (.ci/run): it starts Redis and ClickHouse
# (services.sh), then vets and tests every package. Extra arguments go to
# `go test`, e.g. `bash scripts/test.sh -run TestMigrate -v`.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_root"

log() { printf 'test: %s\n' "$*"; }
fail() {
	printf 'test: FAILED: %s\n' "$*" >&2
	exit 1
}

bash scripts/services.sh || fail "services did not start (see above); fix that and run scripts/test.sh again"

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

log "all passed"
