# tests/lib/core_regress.sh: PostgreSQL's own core regression suite
# (src/test/regress, parallel_schedule) as a tool for the system tests that
# compare its results with and without perfopt.  Source it after cluster.sh
# and assert.sh, then:
#
#   core_fetch             leave the suite in $CORE_CACHE/regress (Debian's
#                          source package; false without the registry)
#   core_prepare WORK      copy the suite into WORK and build regress.so
#   core_run WORK NAME [pg_regress options...]
#                          the schedule (WORK/NAME.schedule if present, else
#                          parallel_schedule) on a throwaway instance
#                          configured by WORK/NAME.conf; results in
#                          WORK/out_NAME/results
#   core_plain WORK        the run of plain PostgreSQL, kept in CORE_CACHE
#                          for an hour, for the server binary and suite it
#                          ran with, so that the scripts comparing against
#                          it run it once between them
#   core_tests WORK        the schedule's tests, one a line
#   core_normalized FILE   a result file with what differs between any two
#                          instances masked (query identifiers, padding)
#
# The suite comes from Debian's source package of PostgreSQL 15 (the newest
# release of it the registry serves; apt checks the signed index, and the
# tarball's SHA-256 is checked again against the .dsc), regress.so is built
# with PGXS.  Every run uses the same server binaries.  CORE_CACHE
# (PG_CORE_REGRESS_CACHE, default under /var/cache) keeps the download and
# the plain run between runs.

CORE_CACHE=${PG_CORE_REGRESS_CACHE:-/var/cache/perfopt-pg-regress}

core_log() { echo "[$(basename "$0" .sh) $(date -u +%H:%M:%S)] $*" >&2; }

core_fetch() {
	local apt=$CORE_CACHE/apt dl=$CORE_CACHE/dl opts v tarball dsc
	[ -f "$CORE_CACHE/regress/parallel_schedule" ] && return 0
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
		core_log "PostgreSQL $v: regression suite from $(basename "$tarball") (checksum verified)"
		rm -rf "$CORE_CACHE/regress.new" && mkdir -p "$CORE_CACHE/regress.new"
		tar -xf "$tarball" -C "$CORE_CACHE/regress.new" --strip-components=4 \
			"postgresql-${v%%-*}/src/test/regress" || return 1
		echo "$v" >"$CORE_CACHE/regress.new/VERSION"
		rm -rf "$CORE_CACHE/regress" && mv "$CORE_CACHE/regress.new" "$CORE_CACHE/regress"
		return 0
	done
	return 1
}

# a copy the postgres user owns: pg_regress writes next to its inputs
core_prepare() {
	local work=$1
	cp -a "$CORE_CACHE/regress" "$work/src"
	cat >"$work/src/Makefile.pgxs" <<-'EOF'
		MODULES = regress
		PGXS := $(shell pg_config --pgxs)
		include $(PGXS)
	EOF
	make -s -C "$work/src" -f Makefile.pgxs >"$work/build.log" 2>&1 ||
		{ cat "$work/build.log"; return 1; }
	chown -R "$PG_USER": "$work"
}

core_run() {
	local work=$1 name=$2 schedule=$1/src/parallel_schedule
	shift 2
	[ -f "$work/$name.schedule" ] && schedule=$work/$name.schedule
	core_log "running the schedule ($name)"
	chown -R "$PG_USER": "$work"
	(cd "$work/src" && as_pg "$PG_PKGLIBDIR/pgxs/src/test/regress/pg_regress" \
		--temp-instance="$work/tmp_$name" --temp-config="$work/$name.conf" \
		--bindir="$PG_BINDIR" --dlpath="$work/src" --inputdir="$work/src" \
		--outputdir="$work/out_$name" --schedule="$schedule" \
		--port="$(free_port)" --max-connections=20 "$@" >"$work/$name.log" 2>&1)
	rm -rf "$work/tmp_$name"
	[ -d "$work/out_$name/results" ] || { tail -20 "$work/$name.log"; return 1; }
}

# The plain run sets compute_query_id = on, as preloading perfopt does (like
# pg_stat_statements), so EXPLAIN VERBOSE shows a Query Identifier in every
# run.  Kept under a key of everything its results depend on, and reused
# for an hour (the scripts of one test run): a result that came out of
# order by chance is not compared against for longer.  A run that did not
# finish leaves nothing behind.
core_plain() {
	local work=$1 key keep d
	key=$( {
		cat "$CORE_CACHE/regress/VERSION"
		sha256sum "$PG_BINDIR/postgres" "$work/src/regress.c" | awk '{print $1}'
	} | sha256sum | cut -c1-16)
	keep=$CORE_CACHE/plain-$key
	if [ -n "$(find "$keep" -maxdepth 0 -mmin -60 2>/dev/null)" ] && [ -d "$keep/results" ]; then
		core_log "the plain run of these binaries is kept in $keep"
		mkdir -p "$work/out_plain" && cp -a "$keep/results" "$work/out_plain/"
		return 0
	fi
	echo "compute_query_id = on" >"$work/plain.conf"
	core_run "$work" plain || return 1
	for d in "$CORE_CACHE"/plain-*; do
		case $d in *.new.*) ;; *) rm -rf "$d" ;; esac
	done
	mkdir -p "$keep.new.$$" && cp -a "$work/out_plain/results" "$keep.new.$$/" &&
		{ mv -T "$keep.new.$$" "$keep" 2>/dev/null || rm -rf "$keep.new.$$"; }
}

core_tests() {
	awk '/^test:/ {for (i = 2; i <= NF; i++) print $i}' "$1/src/parallel_schedule"
}

# Query identifiers hold table OIDs, which differ between two instances:
# their numbers are masked, and so is the column width psql pads a plan to,
# which the length of that number decides; and the directory the suite ran
# from (make_pg_dir's), which errors naming a library show.
core_normalized() {
	sed -E -e '/Query[ -]Identifier/ s/-?[0-9]{3,}/N/g' -e 's/ +$//' -e 's/ +\+$/ +/' \
		-e "s#/[^ '\"]*/perfopt-core[a-z]*\.[A-Za-z0-9]+#@work@#g" \
		-e 's/^ *QUERY PLAN$/QUERY PLAN/' -e 's/^-+$/--/' "$1"
}

# The start both scripts share: fetch the suite (not run, and said, when the
# registry cannot serve it), build it in WORK and have the plain run ready.
# Exits the calling script when a step fails.
core_begin() {
	local work=$1
	if ! core_fetch; then
		echo "not run: PostgreSQL's regression suite could not be fetched from Debian's registry"
		echo "0 passed, 0 failed"
		exit 0
	fi
	core_prepare "$work" || { echo "0 passed, 1 failed"; exit 1; }
	core_plain "$work" || { echo "0 passed, 1 failed"; exit 1; }
}
