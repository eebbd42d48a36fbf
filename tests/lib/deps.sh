#!/usr/bin/env bash
# tests/lib/deps.sh: install the Debian packages perfopt needs to build, test,
# demo and benchmark, without a terminal.  Quick and silent when all are
# present; runs `apt-get update` only when something is missing.
set -euo pipefail

PACKAGES=(
	build-essential postgresql-15 postgresql-client-15 postgresql-contrib
	postgresql-server-dev-15 libkrb5-dev libevent-dev libpq-dev libssl-dev libinih-dev liburing-dev pkg-config
	libipc-run-perl python3 python3-psycopg2 python3-psycopg python3-asyncpg python3-prometheus-client pgbouncer pgpool2
	postgresql-15-hypopg postgresql-15-pg-qualstats iproute2
	clang-14 libclang-rt-14-dev valgrind
)

missing=()
for p in "${PACKAGES[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

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
