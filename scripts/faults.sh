#!/usr/bin/env bash
# What `make faults` runs: the fault-injection suite (faults/). It builds
# hookmesh and FerretDB, gives the suite a fresh PostgreSQL database
# (hookmesh_faults) and the paths of the RabbitMQ server and rabbitmqctl;
# the suite starts its own RabbitMQ node (hookmesh_faults@localhost on
# 127.0.0.1:5673) and FerretDB (127.0.0.1:27020) under .hookmesh/faults, so
# that stopping them touches nothing else. The report goes to
# .hookmesh/faults/report.md. Extra arguments go to go test.
#
# With --scale first (`make scale`) it runs the scale suite instead
# (faults/scale_test.go): three clustered RabbitMQ nodes of its own
# (hookmesh_scale_1..3@localhost on 127.0.0.1:5681..5683, distribution on
# 25681..25683), FerretDB on 127.0.0.1:27021 and the database
# hookmesh_scale, under .hookmesh/scale; the database is dropped after a
# run that passed. It runs TestScale (a load under faults) and
# TestScaleOrdering (ordered delivery under a node's loss). The report goes
# to .hookmesh/scale/report.md.
set -euo pipefail

suite=faults
if [[ ${1:-} == --scale ]]; then
	suite=scale
	shift
fi

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$HOOKMESH_ROOT"
require_go

dir="$HOOKMESH_STATE/$suite"
mkdir -p "$dir"

# The suite needs the RabbitMQ server installed, not running: installing
# it the usual way starts the machine's node too, which is harmless.
ensure_rabbitmq
server=/usr/lib/rabbitmq/bin/rabbitmq-server
ctl=/usr/lib/rabbitmq/bin/rabbitmqctl
if [[ ! -x $server ]]; then
	server="$(command -v rabbitmq-server)" || die "rabbitmq-server not found"
	ctl="$(command -v rabbitmqctl)" || die "rabbitmqctl not found"
fi

# A node left running by an interrupted run would hold the suite's port.
nodes=(hookmesh_faults@localhost)
if [[ $suite == scale ]]; then
	nodes=(hookmesh_scale_1@localhost hookmesh_scale_2@localhost hookmesh_scale_3@localhost)
fi
for node in "${nodes[@]}"; do
	"$ctl" -n "$node" stop >/dev/null 2>&1 || true
done

ensure_postgres
db=hookmesh_$suite
log "fresh PostgreSQL database $db"
_pg_psql "$HOOKMESH_PG_USER" "$HOOKMESH_PG_PASSWORD" -d postgres -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >&2 ||
	die "could not drop the PostgreSQL database $db"
ensure_database "$db"
build_ferretdb

log "building hookmesh"
go build -o "$dir/hookmesh" ./cmd/hookmesh

export HOOKMESH_FAULTS_DIR="$dir"
export HOOKMESH_FAULTS_HOOKMESH="$dir/hookmesh"
export HOOKMESH_FAULTS_FERRETDB="$HOOKMESH_FERRETDB_BIN"
export HOOKMESH_FAULTS_POSTGRESQL_URL="$(pg_url "$db")?pool_max_conns=${HOOKMESH_FERRETDB_PG_CONNS:-20}"
# The delivery history, as `make run` keeps it: in PostgreSQL (the same
# database, schemas of each run's own).
export HOOKMESH_FAULTS_HISTORY_URL="$(pg_url "$db")?sslmode=disable"
export HOOKMESH_FAULTS_RABBITMQ_SERVER="$server"
export HOOKMESH_FAULTS_RABBITMQCTL="$ctl"

if [[ $suite == faults ]]; then
	log "go test -tags faults ./faults $*"
	go test -tags faults -count=1 -timeout 30m -v ./faults "$@"
	exit
fi

export HOOKMESH_FAULTS_SCALE=1
log "go test -tags faults -run '^TestScale(Ordering)?$' ./faults $*"
go test -tags faults -count=1 -timeout 20m -v -run '^TestScale(Ordering)?$' ./faults "$@"
# Everything the run kept: its database (the nodes' data and FerretDB's
# state the suite deleted itself).
_pg_psql "$HOOKMESH_PG_USER" "$HOOKMESH_PG_PASSWORD" -d postgres -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >&2 ||
	die "could not drop the PostgreSQL database $db"
