# shellcheck shell=bash disable=SC2012,SC2034
# Functions shared by scripts/run.sh and scripts/test.sh (and the Makefile).
# Source it from bash: `source scripts/lib.sh`. Safe under `set -euo pipefail`.
#
# It starts whatever the local stack needs and is missing: RabbitMQ and
# PostgreSQL (installed with apt-get when absent and running as root), and
# FerretDB, built from deploy/ferretdb, as the MongoDB-compatible server.

HOOKMESH_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HOOKMESH_STATE="$HOOKMESH_ROOT/.hookmesh"
HOOKMESH_FERRETDB_BIN="$HOOKMESH_STATE/bin/ferretdb"

# Where the local RabbitMQ and PostgreSQL answer (a RabbitMQ node started
# here honours RABBITMQ_NODENAME, RABBITMQ_CONFIG_FILE and the like).
HOOKMESH_RABBITMQ_HOST=127.0.0.1
HOOKMESH_RABBITMQ_PORT="${HOOKMESH_RABBITMQ_PORT:-5672}"
HOOKMESH_PG_HOST=127.0.0.1
HOOKMESH_PG_PORT="${HOOKMESH_PG_PORT:-5432}"
HOOKMESH_PG_CLUSTER="${HOOKMESH_PG_CLUSTER:-main}" # the Debian cluster to start

# Go may be installed in /usr/local/go without being on PATH.
if ! command -v go >/dev/null 2>&1 && [[ -x /usr/local/go/bin/go ]]; then
	export PATH="$PATH:/usr/local/go/bin"
fi
# The RabbitMQ and PostgreSQL admin commands live in sbin.
case ":$PATH:" in *:/usr/sbin:*) ;; *) export PATH="$PATH:/usr/sbin" ;; esac

log() { printf '==> %s\n' "$*" >&2; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() {
	printf 'error: %s\n' "$*" >&2
	exit 1
}

is_root() { [[ "$(id -u)" == 0 ]]; }

# require_go: fail with a clear message when there is no Go toolchain.
require_go() {
	command -v go >/dev/null 2>&1 ||
		die "Go is not installed: install Go 1.26 (https://go.dev/doc/install) into /usr/local/go or put it on PATH"
}

# rand_hex N: N random bytes from /dev/urandom, hex-encoded.
rand_hex() {
	local n="$1" hex=""
	if command -v od >/dev/null 2>&1; then
		hex="$(od -An -v -tx1 -N"$n" /dev/urandom | tr -d ' \n')"
	elif command -v openssl >/dev/null 2>&1; then
		hex="$(openssl rand -hex "$n")"
	fi
	[[ ${#hex} == $((2 * n)) ]] || die "could not read $n random bytes (need od or openssl)"
	printf '%s\n' "$hex"
}

# port_open HOST PORT: whether a TCP connection to HOST:PORT succeeds.
port_open() {
	# shellcheck disable=SC2016 # expanded by the inner bash
	timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" >/dev/null 2>&1
}

# wait_port HOST PORT SECONDS: wait until HOST:PORT accepts connections.
wait_port() {
	local host="$1" port="$2" secs="$3"
	local deadline=$((SECONDS + secs))
	until port_open "$host" "$port"; do
		((SECONDS < deadline)) || return 1
		sleep 0.5
	done
}

# as_root CMD...: run CMD as root (directly, or with passwordless sudo).
as_root() {
	if is_root; then
		"$@"
	elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
		sudo -n "$@"
	else
		return 126
	fi
}

can_be_root() { is_root || { command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; }; }

_HOOKMESH_APT_UPDATED=0
# apt_install PKG...: install Debian packages (as root).
apt_install() {
	if [[ $_HOOKMESH_APT_UPDATED == 0 ]]; then
		log "apt-get update"
		as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 ||
			die "apt-get update failed"
		_HOOKMESH_APT_UPDATED=1
	fi
	log "apt-get install -y $*"
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >&2 ||
		die "apt-get install $* failed"
}

# ---------------------------------------------------------------- Chromium

# ensure_chromium: make sure Debian's chromium is there for the dashboard's
# browser tests, installing it (and a font for its pages) where we can.
# Fails (returns 1, with a warning) when it is missing and cannot be
# installed.
ensure_chromium() {
	if [[ -n ${HOOKMESH_CHROMIUM:-} && -x ${HOOKMESH_CHROMIUM:-} ]] || command -v chromium >/dev/null 2>&1; then
		return 0
	fi
	if ! can_be_root || ! command -v apt-get >/dev/null 2>&1; then
		warn "chromium is not installed: the dashboard's browser tests will be skipped (sudo apt-get install -y chromium)"
		return 1
	fi
	# In a subshell: apt_install exits on failure.
	if ! (apt_install chromium fonts-liberation); then
		warn "could not install chromium: the dashboard's browser tests will be skipped"
		return 1
	fi
	command -v chromium >/dev/null 2>&1
}

# ---------------------------------------------------------------- RabbitMQ

# ensure_rabbitmq: make sure RabbitMQ answers on 127.0.0.1:5672, installing
# and starting it where needed.
ensure_rabbitmq() {
	local host="$HOOKMESH_RABBITMQ_HOST" port="$HOOKMESH_RABBITMQ_PORT"
	port_open "$host" "$port" && return 0

	if ! command -v rabbitmq-server >/dev/null 2>&1; then
		can_be_root || die "RabbitMQ is not installed. Run:
    sudo apt-get update && sudo apt-get install -y rabbitmq-server && sudo rabbitmq-server -detached"
		apt_install rabbitmq-server
		# Its post-install script may have started it already.
		wait_port "$host" "$port" 5 && return 0
	fi

	can_be_root || die "RabbitMQ is not running on $host:$port. Run:
    sudo rabbitmq-server -detached && sudo rabbitmqctl await_startup"

	log "starting RabbitMQ (rabbitmq-server -detached)"
	local start=$SECONDS
	# It fails when a node is already booting; waiting below sorts that out.
	as_root rabbitmq-server -detached >&2 || warn "rabbitmq-server -detached failed; waiting for the port anyway"
	# await_startup returns once the node has booted (or fails at once while
	# the node is not up yet); the port is what counts. 60 s in all.
	as_root timeout 55 rabbitmqctl await_startup --timeout 55 >/dev/null 2>&1 || true
	local left=$((60 - (SECONDS - start)))
	((left >= 5)) || left=5
	wait_port "$host" "$port" "$left" ||
		die "RabbitMQ did not start listening on $host:$port within 60 s (see /var/log/rabbitmq/)"
	log "RabbitMQ is up on $host:$port"
}

# -------------------------------------------------------------- PostgreSQL

# Credentials that ensure_postgres found to work over TCP on 127.0.0.1.
HOOKMESH_PG_USER="${HOOKMESH_PG_USER:-}"
HOOKMESH_PG_PASSWORD="${HOOKMESH_PG_PASSWORD:-}"

# _pg_psql USER PASSWORD ARGS...: psql over TCP, never prompting.
_pg_psql() {
	local user="$1" password="$2"
	shift 2
	PGPASSWORD="$password" PGCONNECT_TIMEOUT=5 psql -X -q -w -v ON_ERROR_STOP=1 \
		-h "$HOOKMESH_PG_HOST" -p "$HOOKMESH_PG_PORT" -U "$user" "$@"
}

_pg_can_login() {
	_pg_psql "$1" "$2" -d postgres -tAc 'SELECT 1' >/dev/null 2>&1
}

# psql as the postgres OS user over the local socket (peer auth), as root.
_pg_superuser_psql() {
	as_root runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -p "$HOOKMESH_PG_PORT" -d postgres "$@"
}

# _pg_start: start the Debian cluster HOOKMESH_PG_CLUSTER (main) of the
# newest PostgreSQL version that has it, creating it when there is none.
_pg_start() {
	local cluster="$HOOKMESH_PG_CLUSTER" version="" v
	for v in $(ls /etc/postgresql 2>/dev/null | sort -rV); do
		if [[ -d /etc/postgresql/$v/$cluster ]]; then
			version="$v"
			break
		fi
	done
	if [[ -z $version ]]; then
		version="$(ls /usr/lib/postgresql 2>/dev/null | sort -V | tail -n 1 || true)"
		[[ -n $version ]] || die "PostgreSQL server binaries not found under /usr/lib/postgresql"
		log "creating PostgreSQL cluster $version/$cluster on port $HOOKMESH_PG_PORT"
		as_root pg_createcluster -p "$HOOKMESH_PG_PORT" "$version" "$cluster" >&2 ||
			die "pg_createcluster $version $cluster failed"
	fi
	log "starting PostgreSQL $version/$cluster (pg_ctlcluster)"
	# Fails with "already running" when a start is under way; waiting sorts that out.
	as_root pg_ctlcluster --skip-systemctl-redirect "$version" "$cluster" start >&2 ||
		warn "pg_ctlcluster $version $cluster start failed; waiting for the server anyway"
}

_pg_ready() {
	pg_isready -q -h "$HOOKMESH_PG_HOST" -p "$HOOKMESH_PG_PORT" -t 3 >/dev/null 2>&1
}

# ensure_postgres: make sure PostgreSQL answers on 127.0.0.1:5432 (installing
# and starting it where needed) and find credentials that log in over TCP:
# sets HOOKMESH_PG_USER and HOOKMESH_PG_PASSWORD.
#
# Where 127.0.0.1 has trust authentication (as on our machines), that is
# the postgres role with no password. A fresh Debian install asks for a
# password on 127.0.0.1 (scram-sha-256) and the postgres role has none: then,
# as root, a role "hookmesh" (LOGIN CREATEDB) is created with a random
# password, kept in .hookmesh/pg-password. HOOKMESH_PG_USER and
# HOOKMESH_PG_PASSWORD, when set, are used as they are.
ensure_postgres() {
	local host="$HOOKMESH_PG_HOST" port="$HOOKMESH_PG_PORT"

	if ! command -v psql >/dev/null 2>&1 || ! command -v pg_isready >/dev/null 2>&1; then
		can_be_root || die "the PostgreSQL client is not installed. Run:
    sudo apt-get update && sudo apt-get install -y postgresql"
		if command -v pg_ctlcluster >/dev/null 2>&1 || _pg_ready_by_port; then
			apt_install postgresql-client
		else
			apt_install postgresql
		fi
	fi

	if ! _pg_ready; then
		if ! compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null; then
			can_be_root || die "PostgreSQL is not installed. Run:
    sudo apt-get update && sudo apt-get install -y postgresql"
			apt_install postgresql
			# Its post-install script may have started it already.
			for _ in 1 2 3 4 5; do
				if _pg_ready; then break; fi
				sleep 1
			done
		fi
		if ! _pg_ready; then
			can_be_root || die "PostgreSQL is not running on $host:$port. Run:
    sudo pg_ctlcluster --skip-systemctl-redirect \$(ls /etc/postgresql | sort -V | tail -n 1) $HOOKMESH_PG_CLUSTER start"
			_pg_start
			local deadline=$((SECONDS + 60))
			until _pg_ready; do
				((SECONDS < deadline)) || die "PostgreSQL did not become ready on $host:$port within 60 s (see /var/log/postgresql/)"
				sleep 0.5
			done
		fi
		log "PostgreSQL is up on $host:$port"
	fi

	_pg_find_credentials
}

# For the odd case of a server running without the Debian tools.
_pg_ready_by_port() { port_open "$HOOKMESH_PG_HOST" "$HOOKMESH_PG_PORT"; }

_pg_find_credentials() {
	local pwfile="$HOOKMESH_STATE/pg-password"

	if [[ -n $HOOKMESH_PG_USER ]]; then
		_pg_can_login "$HOOKMESH_PG_USER" "$HOOKMESH_PG_PASSWORD" ||
			die "cannot log in to PostgreSQL on $HOOKMESH_PG_HOST:$HOOKMESH_PG_PORT as HOOKMESH_PG_USER=$HOOKMESH_PG_USER with HOOKMESH_PG_PASSWORD"
		return 0
	fi

	# Trust authentication on 127.0.0.1.
	if _pg_can_login postgres ""; then
		HOOKMESH_PG_USER=postgres HOOKMESH_PG_PASSWORD=""
		return 0
	fi

	# A role made by an earlier run.
	if [[ -s $pwfile ]] && _pg_can_login hookmesh "$(<"$pwfile")"; then
		HOOKMESH_PG_USER=hookmesh HOOKMESH_PG_PASSWORD="$(<"$pwfile")"
		return 0
	fi

	if ! can_be_root || ! id postgres >/dev/null 2>&1; then
		die "cannot log in to PostgreSQL on $HOOKMESH_PG_HOST:$HOOKMESH_PG_PORT as postgres without a password.
Either allow trust authentication for 127.0.0.1 in pg_hba.conf, or create a role and pass it:
    sudo -u postgres psql -c \"CREATE ROLE hookmesh LOGIN CREATEDB PASSWORD 'choose-one'\"
    export HOOKMESH_PG_USER=hookmesh HOOKMESH_PG_PASSWORD=choose-one"
	fi

	log "PostgreSQL asks for a password on 127.0.0.1: creating role hookmesh (password in .hookmesh/pg-password)"
	local password
	password="$(rand_hex 16)"
	_pg_superuser_psql <<-SQL >&2 || die "could not create the PostgreSQL role hookmesh"
		DO \$\$
		BEGIN
		  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'hookmesh') THEN
		    CREATE ROLE hookmesh LOGIN CREATEDB;
		  END IF;
		END
		\$\$;
		ALTER ROLE hookmesh LOGIN CREATEDB PASSWORD '$password';
	SQL
	mkdir -p "$HOOKMESH_STATE"
	(umask 077 && printf '%s\n' "$password" >"$pwfile")
	_pg_can_login hookmesh "$password" ||
		die "created role hookmesh but cannot log in with it over TCP on 127.0.0.1: check pg_hba.conf"
	HOOKMESH_PG_USER=hookmesh HOOKMESH_PG_PASSWORD="$password"
}

# pg_url DBNAME: the PostgreSQL URL of DBNAME with the credentials found by
# ensure_postgres (the password is hex, so it needs no escaping).
pg_url() {
	local auth="$HOOKMESH_PG_USER"
	[[ -n $HOOKMESH_PG_PASSWORD ]] && auth="$auth:$HOOKMESH_PG_PASSWORD"
	printf 'postgres://%s@%s:%s/%s\n' "$auth" "$HOOKMESH_PG_HOST" "$HOOKMESH_PG_PORT" "$1"
}

# ensure_database NAME: create the PostgreSQL database NAME if it is missing
# (owned by the role that FerretDB logs in as).
ensure_database() {
	local name="$1"
	[[ $name =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || die "invalid database name: $name"
	[[ -n $HOOKMESH_PG_USER ]] || ensure_postgres

	local owner
	owner="$(_pg_psql "$HOOKMESH_PG_USER" "$HOOKMESH_PG_PASSWORD" -d postgres -tA \
		-c "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '$name'")" ||
		die "cannot query PostgreSQL databases as $HOOKMESH_PG_USER"
	if [[ -z $owner ]]; then
		log "creating PostgreSQL database $name"
		if ! _pg_psql "$HOOKMESH_PG_USER" "$HOOKMESH_PG_PASSWORD" -d postgres -c "CREATE DATABASE \"$name\"" >&2; then
			# Another run may have just created it.
			owner="$(_pg_psql "$HOOKMESH_PG_USER" "$HOOKMESH_PG_PASSWORD" -d postgres -tA \
				-c "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '$name'")" || true
			[[ -n $owner ]] || die "could not create PostgreSQL database $name"
		fi
	elif [[ $owner != "$HOOKMESH_PG_USER" && $HOOKMESH_PG_USER != postgres ]] && can_be_root; then
		# Made earlier under another role: FerretDB needs to create schemas in it.
		log "giving PostgreSQL database $name to $HOOKMESH_PG_USER"
		_pg_superuser_psql -c "ALTER DATABASE \"$name\" OWNER TO \"$HOOKMESH_PG_USER\"" >&2 ||
			warn "could not change the owner of database $name"
	fi
}

# ----------------------------------------------------------------- FerretDB

# build_ferretdb: build deploy/ferretdb into .hookmesh/bin/ferretdb when the
# binary is missing or older than the module's sources.
build_ferretdb() {
	local src="$HOOKMESH_ROOT/deploy/ferretdb" bin="$HOOKMESH_FERRETDB_BIN"
	if [[ -x $bin ]] && [[ -z "$(find "$src" -type f \( -name '*.go' -o -name go.mod -o -name go.sum \) -newer "$bin" -print -quit)" ]]; then
		return 0
	fi
	require_go
	mkdir -p "$(dirname "$bin")"
	log "building FerretDB into ${bin#"$HOOKMESH_ROOT"/} (a first build takes a few minutes)"
	(cd "$src" && go build -buildvcs=false -o "$bin.tmp.$$" .) || {
		rm -f "$bin.tmp.$$"
		die "building deploy/ferretdb failed"
	}
	mv -f "$bin.tmp.$$" "$bin"
}

# Set by start_ferretdb.
FERRETDB_URI=""
FERRETDB_STARTED=0

_ferretdb_pidfile() { printf '%s/ferretdb-%s.pid\n' "$HOOKMESH_STATE" "$1"; }

# _ferretdb_alive PID: whether PID is a running ferretdb process of ours.
_ferretdb_alive() {
	local pid="$1" exe
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	kill -0 "$pid" 2>/dev/null || return 1
	exe="$(readlink "/proc/$pid/exe" 2>/dev/null || true)"
	[[ -z $exe || $exe == "$HOOKMESH_FERRETDB_BIN" || $exe == */ferretdb ]]
}

# start_ferretdb PORT PGDB STATEDIR LOGFILE: start FerretDB on 127.0.0.1:PORT
# with the PostgreSQL database PGDB as its backend, in the background, unless
# something already listens on PORT (then it is reused). Prints the MongoDB
# URI; sets FERRETDB_URI, and FERRETDB_STARTED=1 when it started one (stop it
# with stop_ferretdb PORT). Call it directly, not in $(...), to keep those.
start_ferretdb() {
	local port="$1" db="$2" statedir="$3" logfile="$4"
	local host=127.0.0.1 pidfile
	pidfile="$(_ferretdb_pidfile "$port")"
	FERRETDB_URI="mongodb://$host:$port/"
	FERRETDB_STARTED=0

	if port_open "$host" "$port"; then
		log "something already listens on $host:$port: using it as FerretDB"
		printf '%s\n' "$FERRETDB_URI"
		return 0
	fi
	if [[ -f $pidfile ]]; then
		local old
		old="$(<"$pidfile")"
		if _ferretdb_alive "$old"; then
			# Alive but not listening: stuck. Replace it.
			warn "FerretDB pid $old does not answer on $host:$port: stopping it"
			stop_ferretdb "$port"
		fi
		rm -f "$pidfile"
	fi

	build_ferretdb
	[[ -n $HOOKMESH_PG_USER ]] || ensure_postgres
	mkdir -p "$statedir" "$(dirname "$logfile")" "$HOOKMESH_STATE"
	printf -- '--- %s: starting FerretDB on %s:%s, PostgreSQL database %s\n' \
		"$(date '+%Y-%m-%dT%H:%M:%S%z')" "$host" "$port" "$db" >>"$logfile"

	# setsid: its own session, so that a Ctrl-C meant for hookmesh does not
	# reach it; whoever started it stops it. The URL (with any password)
	# goes by environment, out of the process list. FerretDB keeps a pool of
	# 50 PostgreSQL connections unless told otherwise: two of them would use
	# up a default PostgreSQL's 100, so each gets fewer.
	FERRETDB_POSTGRESQL_URL="$(pg_url "$db")?pool_max_conns=${HOOKMESH_FERRETDB_PG_CONNS:-20}" \
		FERRETDB_LOG_LEVEL="${HOOKMESH_FERRETDB_LOG_LEVEL:-warn}" \
		setsid "$HOOKMESH_FERRETDB_BIN" -listen-addr "$host:$port" -state-dir "$statedir" \
		</dev/null >>"$logfile" 2>&1 &
	local pid=$!
	printf '%s\n' "$pid" >"$pidfile"

	local deadline=$((SECONDS + 30))
	until port_open "$host" "$port"; do
		if ! kill -0 "$pid" 2>/dev/null; then
			rm -f "$pidfile"
			tail -n 20 "$logfile" >&2 || true
			die "FerretDB exited at start (log: $logfile)"
		fi
		if ((SECONDS >= deadline)); then
			stop_ferretdb "$port"
			tail -n 20 "$logfile" >&2 || true
			die "FerretDB did not listen on $host:$port within 30 s (log: $logfile)"
		fi
		sleep 0.2
	done
	FERRETDB_STARTED=1
	log "FerretDB is up on $host:$port (pid $pid, log ${logfile#"$HOOKMESH_ROOT"/})"
	printf '%s\n' "$FERRETDB_URI"
}

# stop_ferretdb PORT: stop the FerretDB that start_ferretdb PORT started.
stop_ferretdb() {
	local port="$1" pidfile pid
	pidfile="$(_ferretdb_pidfile "$port")"
	[[ -f $pidfile ]] || return 0
	pid="$(<"$pidfile")"
	if _ferretdb_alive "$pid"; then
		log "stopping FerretDB on 127.0.0.1:$port (pid $pid)"
		kill -TERM "$pid" 2>/dev/null || true
		local deadline=$((SECONDS + 20))
		while kill -0 "$pid" 2>/dev/null; do
			if ((SECONDS >= deadline)); then
				warn "FerretDB pid $pid did not stop within 20 s: killing it"
				kill -KILL "$pid" 2>/dev/null || true
				break
			fi
			sleep 0.2
		done
	fi
	rm -f "$pidfile"
}
