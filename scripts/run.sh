#!/usr/bin/env bash
# shellcheck disable=SC2317 # trap handlers
# What `make run` runs: the whole of hookmesh in one process, on a local stack
# started as needed: RabbitMQ (with its management console) and, unless
# HOOKMESH_MONGODB_URI is set, FerretDB on 127.0.0.1:27017 backed by the
# PostgreSQL database "hookmesh" (HOOKMESH_FERRETDB_PORT moves it to another
# port). Extra arguments go to `hookmesh all`.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$HOOKMESH_ROOT"
require_go

FERRETDB_PORT="${HOOKMESH_FERRETDB_PORT:-27017}"

WATCHER=""
cleanup() {
	if [[ -n $WATCHER ]]; then
		kill "$WATCHER" 2>/dev/null || true
	fi
	if [[ $FERRETDB_STARTED == 1 ]]; then
		stop_ferretdb "$FERRETDB_PORT"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# `make run`: make passes a SIGTERM on to this script, but on a SIGINT or
# SIGHUP sent to make alone (kill -INT <pid of make>) it only waits for its
# children. It does show it: make catches those signals, and resets the one
# it got to the default while it waits. A watcher polls make's caught
# signals (Linux /proc) and interrupts this script when one goes, or when
# make is gone, so that everything started here stops.
watch_make() {
	local make_pid=$PPID comm caught0 caught
	comm="$(cat "/proc/$make_pid/comm" 2>/dev/null || true)"
	[[ $comm == make || $comm == gmake ]] || return 0
	caught0="$(_sigcgt "$make_pid")" || return 0
	# SIGHUP and SIGINT are bits 0 and 1 of the mask.
	((16#$caught0 & 3)) || return 0
	(
		trap - INT TERM HUP EXIT
		while sleep 0.5; do
			caught="$(_sigcgt "$make_pid")" || caught=0
			if (((16#$caught & 3) != (16#$caught0 & 3))); then
				kill -INT "$$" 2>/dev/null
				exit 0
			fi
		done
	) </dev/null >/dev/null 2>&1 &
	WATCHER=$!
}
_sigcgt() { awk '/^SigCgt:/ { print $2; found = 1 } END { exit !found }' "/proc/$1/status" 2>/dev/null; }
watch_make

ensure_rabbitmq
if command -v rabbitmq-plugins >/dev/null 2>&1 && can_be_root; then
	as_root rabbitmq-plugins enable --quiet rabbitmq_management >/dev/null 2>&1 ||
		warn "could not enable the RabbitMQ management plugin (rabbitmq-plugins enable rabbitmq_management)"
else
	warn "not enabling the RabbitMQ management plugin: run 'sudo rabbitmq-plugins enable rabbitmq_management'"
fi

if [[ -z ${HOOKMESH_MONGODB_URI:-} ]]; then
	ensure_postgres
	ensure_database hookmesh
	# A FerretDB on another port keeps its state and log apart.
	suffix=""
	[[ $FERRETDB_PORT == 27017 ]] || suffix="-$FERRETDB_PORT"
	start_ferretdb "$FERRETDB_PORT" hookmesh ".hookmesh/ferretdb$suffix" ".hookmesh/ferretdb$suffix.log" >/dev/null
	export HOOKMESH_MONGODB_URI="$FERRETDB_URI"
fi

# The delivery history (deliveries, attempts, counters, the event list) in
# PostgreSQL tables; HOOKMESH_POSTGRES_URL=none keeps it in MongoDB.
if [[ -z ${HOOKMESH_POSTGRES_URL:-} ]]; then
	ensure_postgres
	ensure_database hookmesh_history
	HOOKMESH_POSTGRES_URL="$(pg_url hookmesh_history)?sslmode=disable"
	export HOOKMESH_POSTGRES_URL
elif [[ $HOOKMESH_POSTGRES_URL == none ]]; then
	HOOKMESH_POSTGRES_URL=""
fi

# The dashboard's development server (npm run dev in ui/) may call the API.
export HOOKMESH_CORS_ALLOWED_ORIGINS="${HOOKMESH_CORS_ALLOWED_ORIGINS-http://127.0.0.1:5173,http://localhost:5173}"

if [[ -z ${HOOKMESH_ADMIN_KEY:-} ]]; then
	keyfile="$HOOKMESH_STATE/admin-key"
	if [[ ! -s $keyfile ]]; then
		mkdir -p "$HOOKMESH_STATE"
		key="hm_admin_$(rand_hex 32)"
		(umask 077 && printf '%s\n' "$key" >"$keyfile")
	fi
	chmod 600 "$keyfile"
	HOOKMESH_ADMIN_KEY="$(<"$keyfile")"
	export HOOKMESH_ADMIN_KEY
	key_source=".hookmesh/admin-key"
else
	key_source="HOOKMESH_ADMIN_KEY"
fi

# The key that encrypts endpoint secrets at rest: made once and kept, since
# secrets sealed with it cannot be opened with another.
if [[ -z ${HOOKMESH_SECRET_KEY:-} ]]; then
	secretfile="$HOOKMESH_STATE/secret-key"
	if [[ ! -s $secretfile ]]; then
		mkdir -p "$HOOKMESH_STATE"
		(umask 077 && rand_hex 32 >"$secretfile")
	fi
	chmod 600 "$secretfile"
	HOOKMESH_SECRET_KEY="$(<"$secretfile")"
	export HOOKMESH_SECRET_KEY
fi

export HOOKMESH_ALLOW_PRIVATE_NETWORKS=true

# Build, then run the binary (rather than `go run`, which would not pass a
# SIGTERM on to hookmesh).
bin="$HOOKMESH_STATE/bin/hookmesh"
mkdir -p "$(dirname "$bin")"
log "building ./cmd/hookmesh"
go build -o "$bin" ./cmd/hookmesh

cat >&2 <<-BANNER

	================================================================
	  hookmesh admin key (from $key_source):

	      $HOOKMESH_ADMIN_KEY

	  MongoDB:  $HOOKMESH_MONGODB_URI
	  RabbitMQ: amqp://guest:guest@127.0.0.1:5672/
	            console http://127.0.0.1:15672 (guest / guest)
	================================================================

BANNER

# hookmesh runs in the foreground of this script, in its own session so that
# a Ctrl-C reaches it once, from here. INT, TERM and HUP (and make's, through
# the watcher above) are passed on; the FerretDB started above is stopped
# when hookmesh has exited.
setsid "$bin" all "$@" </dev/null &
pid=$!
forward() { kill -s "$1" "$pid" 2>/dev/null || true; }
trap 'forward INT' INT
trap 'forward TERM' TERM
trap 'forward HUP' HUP

status=0
while :; do
	wait "$pid" && status=0 || status=$?
	kill -0 "$pid" 2>/dev/null || break
done
exit "$status"
