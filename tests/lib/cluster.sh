# tests/lib/cluster.sh: start and stop throwaway PostgreSQL 15 clusters for
# tests, the demo and benchmarks.  Source it, then:
#
#   cluster_start NAME [extra postgresql.conf lines...]
#       initdb + start a cluster in a fresh temp dir owned by the postgres OS
#       user (PostgreSQL refuses to run as root), listening on 127.0.0.1 and a
#       Unix socket in that dir, on a free port.  Sets, for that NAME:
#         ${NAME}_PORT ${NAME}_DIR ${NAME}_DATA ${NAME}_HOST (socket dir)
#   cluster_stop NAME      fast shutdown, remove the dir
#   cluster_stop_all       stop everything this shell started (trap-safe)
#   as_pg CMD...           run CMD as the postgres OS user when we are root
#   free_port [FROM]       print a TCP port nobody listens on
#
# Only processes this shell started are stopped, by their data directory's
# postmaster.pid; the Debian default cluster on 5432 is never touched.

PG_BINDIR=${PG_BINDIR:-$(pg_config --bindir)}
PG_PKGLIBDIR=${PG_PKGLIBDIR:-$(pg_config --pkglibdir)}
PG_USER=postgres
_CLUSTERS=()

as_pg() {
	if [ "$(id -u)" = 0 ]; then
		runuser -u "$PG_USER" -- env PATH="$PG_BINDIR:$PATH" "$@"
	else
		env PATH="$PG_BINDIR:$PATH" "$@"
	fi
}

# Ports are drawn below the kernel's ephemeral range (32768 and up), where
# outgoing connections take their local ports, and skipped while any socket,
# listening or not, uses them.
free_port() {
	local p=${1:-$((10000 + RANDOM % 22000))}
	while (echo >/dev/tcp/127.0.0.1/$p) 2>/dev/null || ss -tanH 2>/dev/null | awk '{print $4}' | grep -q ":$p\$"; do
		p=$((p + 1))
	done
	echo "$p"
}

# make_pg_dir: a fresh temp dir the postgres user owns
make_pg_dir() {
	local d
	d=$(mktemp -d "${TMPDIR:-/tmp}/perfopt-${1:-tmp}.XXXXXX")
	chmod 755 "$d"
	[ "$(id -u)" = 0 ] && chown "$PG_USER": "$d"
	echo "$d"
}

# cluster_dsn NAME: a libpq connection string to NAME's postgres database
cluster_dsn() {
	local h="${1}_HOST" p="${1}_PORT"
	echo "host=${!h} port=${!p} user=postgres dbname=postgres"
}

# cluster_sql NAME [psql args...]: psql -At on NAME's postgres database as
# postgres, stopping at the first error
cluster_sql() {
	local h="${1}_HOST" p="${1}_PORT"
	shift
	as_pg psql -X -At -h "${!h}" -p "${!p}" -U postgres -d postgres -v ON_ERROR_STOP=1 "$@"
}

# Start the cluster in DIR (configured for PORT) and record it as NAME.
_cluster_launch() {
	local name=$1 dir=$2 port=$3
	if ! as_pg pg_ctl -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null; then
		tail -5 "$dir/server.log" >&2
		_cluster_stop_dir "$dir"
		return 1
	fi
	_CLUSTERS+=("$dir")
	printf -v "${name}_PORT" %s "$port"
	printf -v "${name}_DIR" %s "$dir"
	printf -v "${name}_DATA" %s "$dir/data"
	printf -v "${name}_HOST" %s "$dir"
}

# Another process may take the port between choosing and binding it: when
# the port was ours to choose, try again with another.
cluster_start() {
	local attempt
	for attempt in 1 2 3; do
		_cluster_start_once "$@" && return 0
		[ -n "${CLUSTER_PORT:-}" ] && return 1
		echo "cluster_start: retrying on another port" >&2
	done
	return 1
}

_cluster_start_once() {
	local name=$1; shift
	local port=${CLUSTER_PORT:-$(free_port)}
	local dir
	dir=$(make_pg_dir "$name")
	as_pg initdb -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
		{ cat "$dir/initdb.log" >&2; rm -rf "$dir"; return 1; }
	{
		echo "port = $port"
		echo "listen_addresses = '127.0.0.1'"
		echo "unix_socket_directories = '$dir'"
		echo "fsync = off"
		echo "max_connections = 300"
		echo "max_prepared_transactions = 10"
		echo "log_min_messages = warning"
		echo "logging_collector = off"
		for line in "$@"; do echo "$line"; done
	} >>"$dir/data/postgresql.conf"
	_cluster_launch "$name" "$dir" "$port"
}

# --- streaming standbys --------------------------------------------------
#   cluster_start_standby NAME PRIMARY [extra postgresql.conf lines...]
#       pg_basebackup -R -X stream of the running cluster PRIMARY (its
#       wal_level must be replica or above, which initdb's default is) into
#       a fresh dir, on its own free port and socket dir, started as a hot
#       standby streaming from PRIMARY over loopback.  Sets NAME_* like
#       cluster_start; cluster_stop / cluster_stop_all stop it.
#   cluster_promote NAME   pg_ctl promote, waiting until it accepts writes
#   cluster_wait_replay NAME PRIMARY
#       wait until NAME has replayed everything PRIMARY has written so far
#       (pg_current_wal_lsn on PRIMARY, then pg_last_wal_replay_lsn on NAME)
cluster_start_standby() {
	local name=$1 primary=$2; shift 2
	local pport_var="${primary}_PORT"
	local port dir
	port=$(free_port)
	dir=$(make_pg_dir "$name")
	as_pg pg_basebackup -h 127.0.0.1 -p "${!pport_var}" -U postgres -D "$dir/data" -R -X stream \
		>"$dir/basebackup.log" 2>&1 || { cat "$dir/basebackup.log" >&2; rm -rf "$dir"; return 1; }
	{
		echo "port = $port"
		echo "unix_socket_directories = '$dir'"
		echo "hot_standby = on"
		for line in "$@"; do echo "$line"; done
	} >>"$dir/data/postgresql.conf"
	_cluster_launch "$name" "$dir" "$port"
}

cluster_promote() {
	local dir_var="${1}_DIR"
	as_pg pg_ctl -D "${!dir_var}/data" -w -t 60 promote >/dev/null
}

cluster_wait_replay() {
	local s_host="${1}_HOST" s_port="${1}_PORT" p_host="${2}_HOST" p_port="${2}_PORT"
	local target i
	target=$(as_pg psql -X -Atq -h "${!p_host}" -p "${!p_port}" -d postgres -c "SELECT pg_current_wal_lsn()")
	for i in $(seq 1 600); do
		[ "$(as_pg psql -X -Atq -h "${!s_host}" -p "${!s_port}" -d postgres \
			-c "SELECT pg_last_wal_replay_lsn() >= '$target'::pg_lsn")" = t ] && return 0
		sleep 0.1
	done
	echo "cluster_wait_replay: $1 did not replay up to $target within 60 s" >&2
	return 1
}

cluster_restart() {
	local dir_var="${1}_DIR"
	as_pg pg_ctl -D "${!dir_var}/data" -l "${!dir_var}/server.log" -w -t 60 -m fast restart >/dev/null
}

_cluster_stop_dir() {
	local dir=$1
	[ -f "$dir/data/postmaster.pid" ] &&
		as_pg pg_ctl -D "$dir/data" -w -t 30 -m fast stop >/dev/null 2>&1
	if [ -f "$dir/data/postmaster.pid" ]; then
		local pid
		pid=$(head -1 "$dir/data/postmaster.pid")
		[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
	fi
	[ -z "${KEEP_TMP:-}" ] && rm -rf "$dir"
}

cluster_stop() {
	local dir_var="${1}_DIR" d keep=()
	for d in "${_CLUSTERS[@]}"; do
		if [ "$d" = "${!dir_var}" ]; then _cluster_stop_dir "$d"; else keep+=("$d"); fi
	done
	_CLUSTERS=("${keep[@]}")
}

cluster_stop_all() {
	local d
	for d in "${_CLUSTERS[@]}"; do _cluster_stop_dir "$d"; done
	_CLUSTERS=()
}

# --- fixed-place clusters (the demo) ----------------------------------------
# The demo's cluster must outlive its script and be found again by
# `make demo-stop`, so it lives at a fixed dir and port and is not recorded in
# _CLUSTERS (cluster_stop_all leaves it alone).
#
#   cluster_start_at NAME DIR PORT [extra postgresql.conf lines...]
#       like cluster_start, at DIR (created, owned by postgres) and PORT
#   cluster_stop_at DIR    fast shutdown of the cluster in DIR, remove DIR
#                          (kept with KEEP_TMP=1, like the others)
#   cluster_running_at DIR true when DIR's postmaster is alive

cluster_running_at() {
	[ -f "$1/data/postmaster.pid" ] && as_pg pg_ctl -D "$1/data" status >/dev/null 2>&1
}

cluster_start_at() {
	local name=$1 dir=$2 port=$3; shift 3
	mkdir -p "$dir"
	chmod 755 "$dir"
	[ "$(id -u)" = 0 ] && chown "$PG_USER": "$dir"
	as_pg initdb -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
		{ cat "$dir/initdb.log" >&2; rm -rf "$dir"; return 1; }
	{
		echo "port = $port"
		echo "listen_addresses = '127.0.0.1'"
		echo "unix_socket_directories = '$dir'"
		echo "max_connections = 300"
		echo "log_min_messages = warning"
		echo "logging_collector = off"
		for line in "$@"; do echo "$line"; done
	} >>"$dir/data/postgresql.conf"
	as_pg pg_ctl -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null ||
		{ tail -20 "$dir/server.log" >&2; return 1; }
	printf -v "${name}_PORT" %s "$port"
	printf -v "${name}_DIR" %s "$dir"
	printf -v "${name}_DATA" %s "$dir/data"
	printf -v "${name}_HOST" %s "$dir"
}

cluster_stop_at() {
	local dir=$1
	[ -d "$dir" ] || return 0
	# Refuse to remove anything that does not look like one of our clusters.
	if [ -e "$dir/data" ] && [ ! -f "$dir/data/PG_VERSION" ]; then
		echo "cluster_stop_at: $dir/data is not a PostgreSQL data dir; not touching it" >&2
		return 1
	fi
	_cluster_stop_dir "$dir"
}
