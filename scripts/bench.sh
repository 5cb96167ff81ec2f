#!/usr/bin/env bash
# shellcheck disable=SC2317 # trap handlers
# What `make bench` runs: a load test of hookmesh on a stack of its own.
#
# It makes sure RabbitMQ and PostgreSQL run, starts a FerretDB on
# 127.0.0.1:27019 over the PostgreSQL database "hookmesh_bench" (dropped and
# created anew, so every run starts empty), builds .hookmesh/bin/hookmesh and
# .hookmesh/bin/hookmesh-bench, starts `hookmesh all` on 127.0.0.1:8089 with
# exchanges and queues of its own (prefix bench<pid>) and a fresh admin key,
# its delivery history in the PostgreSQL database "hookmesh_bench_history"
# (also created anew; HOOKMESH_POSTGRES_URL=none keeps the history in
# FerretDB instead), and runs hookmesh-bench against it. Afterwards it stops
# hookmesh, deletes the exchanges and queues, and stops the FerretDB.
#
# Without arguments (and without BENCH_ARGS) it runs the whole suite
# (hookmesh-bench -suite: a burst of 2,000 events to one endpoint, 500
# events fanned out to 10, a steady 200 events/s for 30 s and 1,000/s for
# 60 s), prints one table, writes it to .hookmesh/bench/report.md, and
# records a CPU profile of hookmesh during the steady 200/s row in
# .hookmesh/bench/steady-200.pprof, with `go tool pprof -top` of it in
# .hookmesh/bench/steady-200-top.txt.
# Arguments go to hookmesh-bench (see `.hookmesh/bin/hookmesh-bench -h`) and
# run one benchmark, e.g.
#   scripts/bench.sh -events 20000 -shape fanout -endpoints 10
# or BENCH_ARGS does: `make bench BENCH_ARGS="-rate 200"`.
# Other HOOKMESH_* variables (HOOKMESH_DELIVERY_CONCURRENCY, ...) reach
# hookmesh. hookmesh logs to .hookmesh/bench-hookmesh.log, FerretDB to
# .hookmesh/ferretdb-bench.log.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$HOOKMESH_ROOT"
require_go

BENCH_FERRETDB_PORT="${HOOKMESH_BENCH_FERRETDB_PORT:-27019}"
BENCH_DB=hookmesh_bench
BENCH_HOST=127.0.0.1
BENCH_PORT="${HOOKMESH_BENCH_PORT:-8089}"
BENCH_PREFIX="bench$$"
BENCH_LOG="$HOOKMESH_STATE/bench-hookmesh.log"
BIN="$HOOKMESH_STATE/bin"

BENCH_OUT="$HOOKMESH_STATE/bench"

args=("$@")
if ((${#args[@]} == 0)) && [[ -n ${BENCH_ARGS:-} ]]; then
	read -r -a args <<<"$BENCH_ARGS"
fi
suite=0
if ((${#args[@]} == 0)); then
	suite=1
	# Nothing of an earlier run may pass for this one's.
	rm -f "$BENCH_OUT/report.md" "$BENCH_OUT/report.json" "$BENCH_OUT/steady-200.pprof" "$BENCH_OUT/steady-200-top.txt"
	args=(-suite -report "$BENCH_OUT/report.md" -profile "$BENCH_OUT/steady-200.pprof" -label "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' (with uncommitted changes)')")
fi

hookmesh_pid=""

# stop_hookmesh: SIGTERM, then wait for the graceful shutdown (20 s by
# default), then SIGKILL.
stop_hookmesh() {
	[[ -n $hookmesh_pid ]] || return 0
	local pid="$hookmesh_pid"
	hookmesh_pid=""
	kill -0 "$pid" 2>/dev/null || return 0
	log "stopping hookmesh (pid $pid)"
	kill -TERM "$pid" 2>/dev/null || true
	local deadline=$((SECONDS + 30))
	while kill -0 "$pid" 2>/dev/null; do
		if ((SECONDS >= deadline)); then
			warn "hookmesh pid $pid did not stop within 30 s: killing it"
			kill -KILL "$pid" 2>/dev/null || true
			break
		fi
		sleep 0.2
	done
	wait "$pid" 2>/dev/null || true
}

# delete_amqp_topology PREFIX: delete the queues and exchanges whose names
# start with PREFIX. (rabbitmqctl has no delete_exchange: exchanges go
# through rabbitmqctl eval, else rabbitmqadmin, else they are left.)
# rabbitmqctl reads its standard input, hence the </dev/null.
delete_amqp_topology() {
	local prefix="$1" name out queues=() exchanges=() left=()
	if ! command -v rabbitmqctl >/dev/null 2>&1 || ! can_be_root; then
		warn "cannot run rabbitmqctl as root: queues and exchanges $prefix.* are left behind"
		return 0
	fi
	mapfile -t queues < <(as_root rabbitmqctl -q list_queues name --no-table-headers </dev/null 2>/dev/null || true)
	mapfile -t exchanges < <(as_root rabbitmqctl -q list_exchanges name --no-table-headers </dev/null 2>/dev/null || true)
	for name in "${queues[@]}"; do
		[[ $name == "$prefix".* ]] || continue
		as_root rabbitmqctl -q delete_queue "$name" </dev/null >/dev/null 2>&1 ||
			warn "could not delete queue $name"
	done
	for name in "${exchanges[@]}"; do
		[[ $name == "$prefix".* ]] || continue
		# Only plain names go into the Erlang expression.
		if [[ $name =~ ^[A-Za-z0-9._-]+$ ]]; then
			out="$(as_root rabbitmqctl -q eval \
				"rabbit_exchange:delete(rabbit_misc:r(<<\"/\">>, exchange, <<\"$name\">>), false, <<\"hookmesh-bench\">>)." </dev/null 2>&1 || true)"
			[[ $out == ok ]] && continue
		fi
		if command -v rabbitmqadmin >/dev/null 2>&1 &&
			rabbitmqadmin delete exchange name="$name" </dev/null >/dev/null 2>&1; then
			continue
		fi
		left+=("$name")
	done
	if ((${#left[@]} > 0)); then
		warn "could not delete exchanges ${left[*]} (neither rabbitmqctl eval nor rabbitmqadmin worked); they hold no messages"
	fi
	log "deleted AMQP queues and exchanges $prefix.*"
}

cleanup() {
	local status=$?
	stop_hookmesh
	delete_amqp_topology "$BENCH_PREFIX"
	if [[ $FERRETDB_STARTED == 1 ]]; then
		stop_ferretdb "$BENCH_FERRETDB_PORT"
	fi
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# http_ok URL: whether GET URL answers 2xx.
http_ok() {
	if command -v curl >/dev/null 2>&1; then
		curl -fsS -o /dev/null --max-time 3 "$1" 2>/dev/null
		return
	fi
	local rest="${1#http://}" hostport path
	hostport="${rest%%/*}" path="/${rest#*/}"
	# shellcheck disable=SC2016 # expanded by the inner bash
	timeout 3 bash -c 'exec 3<>"/dev/tcp/${1%:*}/${1##*:}" &&
		printf "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n" "$2" "$1" >&3 &&
		head -n 1 <&3 | grep -q "^HTTP/1\.[01] 2"' _ "$hostport" "$path"
}

# build PKG NAME: go build PKG into .hookmesh/bin/NAME, replacing the binary
# by a rename so that a process running the old one is not disturbed.
build() {
	local pkg="$1" out="$BIN/$2"
	mkdir -p "$BIN"
	log "building $pkg into ${out#"$HOOKMESH_ROOT"/}"
	go build -o "$out.tmp.$$" "$pkg" || {
		rm -f "$out.tmp.$$"
		die "go build $pkg failed"
	}
	mv -f "$out.tmp.$$" "$out"
}

# One benchmark at a time: two would share the FerretDB port and pidfile.
mkdir -p "$HOOKMESH_STATE"
if command -v flock >/dev/null 2>&1; then
	exec 9>"$HOOKMESH_STATE/bench.lock"
	flock -n 9 || die "another scripts/bench.sh is running (it holds .hookmesh/bench.lock): wait for it to finish"
fi

ensure_rabbitmq
ensure_postgres

# Fresh state: no FerretDB of an earlier run may hold the database.
stop_ferretdb "$BENCH_FERRETDB_PORT"
if port_open 127.0.0.1 "$BENCH_FERRETDB_PORT"; then
	die "something that this script did not start listens on 127.0.0.1:$BENCH_FERRETDB_PORT: stop it, or set HOOKMESH_BENCH_FERRETDB_PORT to a free port"
fi
if port_open "$BENCH_HOST" "$BENCH_PORT"; then
	die "$BENCH_HOST:$BENCH_PORT is in use (another benchmark?): stop it, or set HOOKMESH_BENCH_PORT to a free port"
fi
log "dropping and creating PostgreSQL database $BENCH_DB"
# WITH (FORCE) (PostgreSQL 13+) ends connections that a killed run left.
_pg_psql "$HOOKMESH_PG_USER" "$HOOKMESH_PG_PASSWORD" -d postgres -c "DROP DATABASE IF EXISTS $BENCH_DB WITH (FORCE)" >&2 2>/dev/null ||
	_pg_psql "$HOOKMESH_PG_USER" "$HOOKMESH_PG_PASSWORD" -d postgres -c "DROP DATABASE IF EXISTS $BENCH_DB" >&2 ||
	die "could not drop PostgreSQL database $BENCH_DB"
ensure_database "$BENCH_DB"
# The delivery history in PostgreSQL tables, as make run keeps it.
bench_postgres_url=""
if [[ ${HOOKMESH_POSTGRES_URL:-} != none ]]; then
	_pg_psql "$HOOKMESH_PG_USER" "$HOOKMESH_PG_PASSWORD" -d postgres -c "DROP DATABASE IF EXISTS ${BENCH_DB}_history WITH (FORCE)" >&2 2>/dev/null ||
		_pg_psql "$HOOKMESH_PG_USER" "$HOOKMESH_PG_PASSWORD" -d postgres -c "DROP DATABASE IF EXISTS ${BENCH_DB}_history" >&2 ||
		die "could not drop PostgreSQL database ${BENCH_DB}_history"
	ensure_database "${BENCH_DB}_history"
	bench_postgres_url="$(pg_url "${BENCH_DB}_history")?sslmode=disable"
fi
start_ferretdb "$BENCH_FERRETDB_PORT" "$BENCH_DB" .hookmesh/ferretdb-bench .hookmesh/ferretdb-bench.log >/dev/null 9>&-

build ./cmd/hookmesh hookmesh
build ./cmd/hookmesh-bench hookmesh-bench

HOOKMESH_ADMIN_KEY="hm_admin_$(rand_hex 32)"
export HOOKMESH_ADMIN_KEY
HOOKMESH_SECRET_KEY="$(rand_hex 32)"
export HOOKMESH_SECRET_KEY

log "starting hookmesh all on $BENCH_HOST:$BENCH_PORT (AMQP prefix $BENCH_PREFIX, log ${BENCH_LOG#"$HOOKMESH_ROOT"/})"
# Its own session, so that a Ctrl-C reaches it once, from cleanup.
HOOKMESH_HTTP_ADDR="$BENCH_HOST:$BENCH_PORT" \
	HOOKMESH_MONGODB_URI="$FERRETDB_URI" \
	HOOKMESH_POSTGRES_URL="$bench_postgres_url" \
	HOOKMESH_AMQP_URL="amqp://guest:guest@$HOOKMESH_RABBITMQ_HOST:$HOOKMESH_RABBITMQ_PORT/" \
	HOOKMESH_AMQP_PREFIX="$BENCH_PREFIX" \
	HOOKMESH_ALLOW_PRIVATE_NETWORKS=true \
	HOOKMESH_PPROF=true \
	setsid "$BIN/hookmesh" all </dev/null >"$BENCH_LOG" 2>&1 9>&- &
hookmesh_pid=$!

deadline=$((SECONDS + 60))
until http_ok "http://$BENCH_HOST:$BENCH_PORT/readyz"; do
	if ! kill -0 "$hookmesh_pid" 2>/dev/null; then
		hookmesh_pid=""
		tail -n 20 "$BENCH_LOG" >&2 || true
		die "hookmesh exited at start (log: ${BENCH_LOG#"$HOOKMESH_ROOT"/})"
	fi
	if ((SECONDS >= deadline)); then
		tail -n 20 "$BENCH_LOG" >&2 || true
		die "hookmesh was not ready on $BENCH_HOST:$BENCH_PORT/readyz within 60 s (log: ${BENCH_LOG#"$HOOKMESH_ROOT"/})"
	fi
	sleep 0.2
done
log "hookmesh is ready (pid $hookmesh_pid)"

# Where the time goes: FerretDB, the broker and PostgreSQL are measured too:
# every postgres process (the server's own writers count), and apart from
# them the backends of this run's databases (hookmesh_bench and
# hookmesh_bench_history: both names contain hookmesh_bench). The broker and
# PostgreSQL are shared with whatever else runs on the machine.
watch="postgres=comm:postgres,postgres-bench=$BENCH_DB"
ferretdb_pid="$(cat "$(_ferretdb_pidfile "$BENCH_FERRETDB_PORT")" 2>/dev/null || true)"
[[ -n $ferretdb_pid ]] && watch="ferretdb=$ferretdb_pid,$watch"
rabbit_pid="$(as_root rabbitmqctl -q status 2>/dev/null | sed -n 's/^OS PID: *\([0-9][0-9]*\).*/\1/p' | head -n 1 || true)"
[[ -n $rabbit_pid ]] && watch="rabbitmq=$rabbit_pid,$watch"

status=0
# -history fills the history hookmesh keeps in PostgreSQL.
HOOKMESH_POSTGRES_URL="$bench_postgres_url" \
	"$BIN/hookmesh-bench" -api "http://$BENCH_HOST:$BENCH_PORT" -pid "$hookmesh_pid" -watch "$watch" "${args[@]}" || status=$?
if ((status != 0)); then
	warn "hookmesh-bench exited with status $status; hookmesh log: ${BENCH_LOG#"$HOOKMESH_ROOT"/}"
fi
if ((suite)) && [[ -s $BENCH_OUT/steady-200.pprof ]]; then
	if go tool pprof -top "$BIN/hookmesh" "$BENCH_OUT/steady-200.pprof" >"$BENCH_OUT/steady-200-top.txt" 2>/dev/null; then
		if [[ -f $BENCH_OUT/report.md ]]; then
			{
				printf '\nIts top entries (`go tool pprof -top`, all in steady-200-top.txt):\n\n```\n'
				head -n 30 "$BENCH_OUT/steady-200-top.txt"
				printf '```\n'
			} >>"$BENCH_OUT/report.md"
		fi
		log "report in ${BENCH_OUT#"$HOOKMESH_ROOT"/}/report.md; CPU profile of the steady 200/s row in steady-200.pprof, its top in steady-200-top.txt"
	else
		warn "go tool pprof -top failed on ${BENCH_OUT#"$HOOKMESH_ROOT"/}/steady-200.pprof"
	fi
fi
if grep -q '"level":"ERROR"' "$BENCH_LOG"; then
	warn "hookmesh logged $(grep -c '"level":"ERROR"' "$BENCH_LOG") errors (${BENCH_LOG#"$HOOKMESH_ROOT"/})"
fi
exit "$status"
