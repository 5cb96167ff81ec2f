#!/usr/bin/env bash
# shellcheck disable=SC2317 # trap handlers
# What `make test` runs: starts what the tests need (RabbitMQ, PostgreSQL and
# a test FerretDB on 127.0.0.1:27018), then go vet and go test. Extra
# arguments go to go test, e.g. `scripts/test.sh -run TestIngest -v`.
#
# HOOKMESH_TEST_MONGODB_URI, when set, points the tests at that MongoDB
# instead (no FerretDB is started); HOOKMESH_TEST_AMQP_URL likewise.
# HOOKMESH_TEST_FERRETDB_PORT moves the test FerretDB to another port.
#
# The dashboard's browser tests need Chromium: installed with apt-get when
# missing and running as root, and then required (HOOKMESH_REQUIRE_BROWSER=1:
# they fail rather than skip). Without it they skip with a message.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$HOOKMESH_ROOT"
require_go

FERRETDB_TEST_PORT="${HOOKMESH_TEST_FERRETDB_PORT:-27018}"

cleanup() {
	if [[ $FERRETDB_STARTED == 1 ]]; then
		stop_ferretdb "$FERRETDB_TEST_PORT"
	fi
}
trap cleanup EXIT
# Run the EXIT trap on Ctrl-C and kill too.
trap 'exit 130' INT
trap 'exit 143' TERM

ensure_rabbitmq
export HOOKMESH_TEST_AMQP_URL="${HOOKMESH_TEST_AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/}"

ensure_postgres
if [[ -z ${HOOKMESH_TEST_MONGODB_URI:-} ]]; then
	ensure_database hookmesh_test
	start_ferretdb "$FERRETDB_TEST_PORT" hookmesh_test .hookmesh/ferretdb-test .hookmesh/ferretdb-test.log >/dev/null
	export HOOKMESH_TEST_MONGODB_URI="$FERRETDB_URI"
fi

# The delivery history's PostgreSQL database (each test uses schemas of its
# own in it).
if [[ -z ${HOOKMESH_TEST_POSTGRES_URL:-} ]]; then
	ensure_database hookmesh_test_history
	HOOKMESH_TEST_POSTGRES_URL="$(pg_url hookmesh_test_history)?sslmode=disable"
	export HOOKMESH_TEST_POSTGRES_URL
fi

if ensure_chromium; then
	export HOOKMESH_REQUIRE_BROWSER="${HOOKMESH_REQUIRE_BROWSER:-1}"
fi

log "HOOKMESH_TEST_MONGODB_URI=$HOOKMESH_TEST_MONGODB_URI"
log "HOOKMESH_TEST_POSTGRES_URL=$HOOKMESH_TEST_POSTGRES_URL"
log "HOOKMESH_TEST_AMQP_URL=$HOOKMESH_TEST_AMQP_URL"

log "go vet ./..."
go vet ./...

log "go test -count=1 -timeout 12m ./... $*"
status=0
go test -count=1 -timeout 12m ./... "$@" || status=$?
exit "$status"
