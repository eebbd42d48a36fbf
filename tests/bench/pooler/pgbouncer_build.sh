#!/usr/bin/env bash
# tests/bench/pooler/pgbouncer_build.sh: prints the path of a PgBouncer built
# from Debian's source package, building it first when the bench's cache
# does not hold it yet.
#
#   bash tests/bench/pooler/pgbouncer_build.sh [SERIES]
#
# SERIES (default 1.24, BENCH_PGBOUNCER_SERIES) picks the newest Debian
# version of that upstream series the registry serves (Debian 13 ships
# 1.24; an empty SERIES takes the newest of all, unstable's included).  apt
# reads the signed indexes of bookworm, trixie (with its security updates)
# and sid into a private list directory (the system's apt state is not
# touched), downloads the .dsc with the upstream tarball and Debian's
# patches (apt checks them against the signed index), the tarball's SHA-256
# is checked again against the .dsc, and dpkg-source unpacks it with
# Debian's patches (security fixes) applied.  Built with Debian's default
# optimisation (-O2), without PAM, systemd or c-ares (none matters to a
# benchmark on a Unix socket), into
#   $BENCH_PGBOUNCER_CACHE/<version>/pgbouncer   (default /var/cache/perfopt-pgbouncer)
# Progress on stderr; the binary's path alone on stdout; exit 1 when the
# registry cannot be reached or the build fails.
set -euo pipefail
SERIES=${1-${BENCH_PGBOUNCER_SERIES-1.24}}
CACHE=${BENCH_PGBOUNCER_CACHE:-/var/cache/perfopt-pgbouncer}
log() { echo "pgbouncer build: $*" >&2; }

mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock 9 # two benches never build into the same directory at once

apt=$CACHE/apt
mkdir -p "$apt/lists/partial" "$apt/cache"
key=/usr/share/keyrings/debian-archive-keyring.gpg
cat >"$apt/sources.list" <<EOF
deb-src [signed-by=$key] http://deb.debian.org/debian bookworm main
deb-src [signed-by=$key] http://deb.debian.org/debian trixie main
deb-src [signed-by=$key] http://deb.debian.org/debian-security trixie-security main
deb-src [signed-by=$key] http://deb.debian.org/debian sid main
EOF
opts=(-o "Dir::Etc::SourceList=$apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
	-o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache" -o APT::Sandbox::User=root)

# a binary built before is used as it is when the registry cannot be reached
newest_built() {
	local b
	b=$(ls -d "$CACHE"/"${SERIES}"*/pgbouncer 2>/dev/null | sort -V | tail -1)
	[ -n "$b" ] && [ -x "$b" ] && echo "$b"
}

if ! apt-get "${opts[@]}" -qq update >/dev/null 2>&1; then
	newest_built && exit 0
	log "cannot read Debian's source indexes"
	exit 1
fi

version=
for v in $(apt-cache "${opts[@]}" showsrc pgbouncer | awk '/^Version:/ {print $2}' | sort -rVu); do
	up=${v#*:}
	up=${up%%-*}
	if [ -z "$SERIES" ] || [ "${up#"$SERIES".}" != "$up" ] || [ "$up" = "$SERIES" ]; then
		version=$v
		break
	fi
done
[ -n "$version" ] || { log "Debian serves no PgBouncer $SERIES"; exit 1; }
upstream=${version#*:}
upstream=${upstream%%-*}
dest=$CACHE/$version
if [ -x "$dest/pgbouncer" ]; then
	echo "$dest/pgbouncer"
	exit 0
fi

dl=$CACHE/dl/$version
rm -rf "$dl" && mkdir -p "$dl"
log "downloading pgbouncer $version (Debian source package)"
(cd "$dl" && apt-get "${opts[@]}" -qq source --download-only "pgbouncer=$version" >/dev/null 2>&1) ||
	{ log "download of pgbouncer $version failed"; exit 1; }
dsc=$dl/pgbouncer_${version#*:}.dsc
tarball=$(ls "$dl"/pgbouncer_"$upstream".orig.tar.* | head -1)
awk '/^Checksums-Sha256:/ {on = 1; next} /^[^ ]/ {on = 0} on {print $1 "  " $3}' "$dsc" |
	grep -F " $(basename "$tarball")" | (cd "$dl" && sha256sum -c --quiet -) ||
	{ log "$(basename "$tarball"): SHA-256 does not match the .dsc"; exit 1; }
log "$(basename "$tarball"): SHA-256 matches the .dsc"
dpkg-source -x "$dsc" "$dl/src" >"$dl/unpack.log" 2>&1 || { cat "$dl/unpack.log" >&2; exit 1; }

log "building PgBouncer $upstream (about a minute)"
(
	cd "$dl/src"
	./configure --prefix="$dest" --without-pam --without-systemd --without-cares >"$dl/configure.log" 2>&1
	nice make -j2 pgbouncer >"$dl/make.log" 2>&1
) || { log "build failed: see $dl/configure.log and $dl/make.log"; exit 1; }
mkdir -p "$dest.new"
cp "$dl/src/pgbouncer" "$dest.new/pgbouncer"
chmod 755 "$CACHE" "$dest.new" "$dest.new/pgbouncer"
rm -rf "$dest" && mv "$dest.new" "$dest"
rm -rf "$dl/src"
log "built $("$dest/pgbouncer" --version | head -1) into $dest"
echo "$dest/pgbouncer"
