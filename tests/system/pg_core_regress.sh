#!/usr/bin/env bash
# PostgreSQL's own core regression suite (src/test/regress, parallel_schedule)
# with perfopt preloaded at its defaults gives exactly the results it gives
# without perfopt: the standing proof of "do no harm" on SQL nobody here wrote.
#
# The suite comes from Debian's source package of PostgreSQL 15 (the newest
# release of it the registry serves; apt checks the signed index, and the
# tarball's SHA-256 is checked again against the .dsc), regress.so is built
# with PGXS.  Both runs use the same server binaries in throwaway instances;
# the plain one sets compute_query_id = on, as preloading perfopt does (like
# pg_stat_statements), so EXPLAIN VERBOSE shows a Query Identifier in both
# (its value, which holds table OIDs, is masked).
# Results are compared with each other, not with the suite's expected files:
# a suite a release or two away from the server differs from its expected
# output in the same way in both runs, and that is not perfopt's doing.
#
# One check per test of the schedule.  Without the registry (no network)
# nothing can be fetched: the suite is reported as not run, never passed.
# PG_CORE_REGRESS_CACHE keeps the download between runs (default under
# /var/cache).
set -uo pipefail
ROOT=${PERFOPT_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$ROOT/tests/lib/cluster.sh"
. "$ROOT/tests/lib/assert.sh"

CACHE=${PG_CORE_REGRESS_CACHE:-/var/cache/perfopt-pg-regress}
WORK=$(make_pg_dir coreregress)
trap 'rm -rf "$WORK"' EXIT
log() { echo "[pg_core_regress $(date -u +%H:%M:%S)] $*" >&2; }

# fetch_suite: leaves the source tarball's src/test/regress in $CACHE/regress
fetch_suite() {
	local apt=$CACHE/apt dl=$CACHE/dl opts v tarball dsc
	[ -f "$CACHE/regress/parallel_schedule" ] && return 0
	mkdir -p "$apt/lists/partial" "$apt/cache" "$dl"
	cat >"$apt/sources.list" <<-EOF
		deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian-security bookworm-security main
		deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm main
	EOF
	opts=(-o "Dir::Etc::SourceList=$apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
		-o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache" -o APT::Sandbox::User=root)
	apt-get "${opts[@]}" -qq update >/dev/null 2>&1 || return 1
	# newest first; a version whose files the mirror no longer has is skipped
	for v in $(apt-cache "${opts[@]}" showsrc postgresql-15 | awk '/^Version:/ {print $2}' | sort -rV); do
		(cd "$dl" && apt-get "${opts[@]}" -qq source --download-only "postgresql-15=$v" >/dev/null 2>&1) || continue
		dsc=$(ls "$dl"/postgresql-15_"${v}".dsc 2>/dev/null) || continue
		tarball=$(ls "$dl"/postgresql-15_"${v%%-*}".orig.tar.* 2>/dev/null | head -1)
		[ -n "$tarball" ] || continue
		# the .dsc lists each file's SHA-256: check the tarball against it
		awk '/^Checksums-Sha256:/ {on = 1; next} /^[^ ]/ {on = 0} on {print $1 "  " $3}' "$dsc" |
			grep -F " $(basename "$tarball")" | (cd "$dl" && sha256sum -c --quiet -) || return 1
		log "PostgreSQL $v: regression suite from $(basename "$tarball") (checksum verified)"
		rm -rf "$CACHE/regress.new" && mkdir -p "$CACHE/regress.new"
		tar -xf "$tarball" -C "$CACHE/regress.new" --strip-components=4 \
			"postgresql-${v%%-*}/src/test/regress" || return 1
		echo "$v" >"$CACHE/regress.new/VERSION"
		rm -rf "$CACHE/regress" && mv "$CACHE/regress.new" "$CACHE/regress"
		return 0
	done
	return 1
}

if ! fetch_suite; then
	echo "not run: PostgreSQL's regression suite could not be fetched from Debian's registry"
	echo "0 passed, 0 failed"
	exit 0
fi

# a copy the postgres user owns: pg_regress writes next to its inputs
cp -a "$CACHE/regress" "$WORK/src"
cat >"$WORK/src/Makefile.pgxs" <<'EOF'
MODULES = regress
PGXS := $(shell pg_config --pgxs)
include $(PGXS)
EOF
make -s -C "$WORK/src" -f Makefile.pgxs >"$WORK/build.log" 2>&1 ||
	{ cat "$WORK/build.log"; echo "0 passed, 1 failed"; exit 1; }
echo "compute_query_id = on" >"$WORK/plain.conf"
echo "shared_preload_libraries = 'perfopt'" >"$WORK/perfopt.conf"
chown -R "$PG_USER": "$WORK"

# run_suite NAME: the whole schedule against a throwaway instance
run_suite() {
	local name=$1
	log "running the schedule ($name)"
	(cd "$WORK/src" && as_pg "$PG_PKGLIBDIR/pgxs/src/test/regress/pg_regress" \
		--temp-instance="$WORK/tmp_$name" --temp-config="$WORK/$name.conf" \
		--bindir="$PG_BINDIR" --dlpath="$WORK/src" --inputdir="$WORK/src" \
		--outputdir="$WORK/out_$name" --schedule="$WORK/src/parallel_schedule" \
		--port="$(free_port)" --max-connections=20 >"$WORK/$name.log" 2>&1)
	rm -rf "$WORK/tmp_$name"
	[ -d "$WORK/out_$name/results" ] || { tail -20 "$WORK/$name.log"; return 1; }
}

run_suite plain || { echo "0 passed, 1 failed"; exit 1; }
run_suite perfopt || { echo "0 passed, 1 failed"; exit 1; }

# Query identifiers hold table OIDs, which differ between the two
# instances: their numbers are masked, and so is the column width psql pads
# a plan to, which the length of that number decides.
normalized() {
	sed -E -e '/Query[ -]Identifier/ s/-?[0-9]{3,}/N/g' -e 's/ +$//' -e 's/ +\+$/ +/' \
		-e 's/^ *QUERY PLAN$/QUERY PLAN/' -e 's/^-+$/--/' "$1"
}

for t in $(awk '/^test:/ {for (i = 2; i <= NF; i++) print $i}' "$WORK/src/parallel_schedule"); do
	a=$WORK/out_plain/results/$t.out
	b=$WORK/out_perfopt/results/$t.out
	if [ -f "$a" ] && [ -f "$b" ] && cmp -s <(normalized "$a") <(normalized "$b"); then
		pass "$t: the same result with perfopt preloaded"
	else
		fail "$t: the same result with perfopt preloaded"
		diff -u <(normalized "$a") <(normalized "$b") 2>&1 | head -40
	fi
done
assert_summary
