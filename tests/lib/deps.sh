#!/usr/bin/env bash
# tests/lib/deps.sh: install the Debian packages perfopt needs to build, test,
# demo and benchmark, without a terminal, then node-postgres (npm pg, pinned
# by tests/pooler/drivers/package-lock.json) into the directory of the
# pooler's driver tests.  Quick and silent when all are present; runs
# `apt-get update` only when something is missing.  A driver that cannot be
# installed is reported here and skipped (counted) by the driver tests.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)

PACKAGES=(
	build-essential postgresql-15 postgresql-client-15 postgresql-contrib
	postgresql-server-dev-15 libkrb5-dev libevent-dev libpq-dev libssl-dev libinih-dev liburing-dev pkg-config
	libipc-run-perl python3 python3-psycopg2 python3-psycopg python3-asyncpg python3-prometheus-client pgbouncer pgpool2
	postgresql-15-hypopg postgresql-15-pg-qualstats iproute2
	clang-14 libclang-rt-14-dev valgrind
	python3-sqlalchemy ruby-pg libpostgresql-jdbc-java openjdk-17-jdk-headless
)

missing=()
for p in "${PACKAGES[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# node and npm may come from elsewhere (NodeSource's nodejs carries its own
# npm, which Debian's npm package conflicts with): only when a command is missing
command -v node >/dev/null && command -v npm >/dev/null || missing+=(nodejs npm)

install_node_pg() {
	local dir=$ROOT/tests/pooler/drivers
	[ -f "$dir/node_modules/pg/package.json" ] && return 0
	command -v npm >/dev/null || return 0
	echo "deps: npm ci (node-postgres) in tests/pooler/drivers"
	npm ci --no-audit --no-fund --prefix "$dir" >/dev/null 2>&1 ||
		echo "deps: npm could not install pg: the node-postgres tests will be skipped"
}

if [ ${#missing[@]} -eq 0 ]; then
	install_node_pg
	exit 0
fi

echo "deps: installing ${missing[*]}"
SUDO=
[ "$(id -u)" = 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
# Debian's postgresql-common would create and start a default cluster on
# 5432; we never use it, so don't let installing create one.
if [ ! -f /etc/postgresql-common/createcluster.conf ]; then
	$SUDO mkdir -p /etc/postgresql-common
	echo "create_main_cluster = false" | $SUDO tee /etc/postgresql-common/createcluster.conf >/dev/null
fi
$SUDO apt-get update -q >/dev/null
$SUDO apt-get install -y -q --no-install-recommends \
	-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}" >/dev/null
install_node_pg
