#!/usr/bin/env bash
# pooler_fuzz.sh: the make-test share of perfopt-pooler's fuzzing and
# sanitizer checks.
#   1. builds the libFuzzer targets and an ASan+UBSan perfopt-pooler from
#      pooler/'s sources (tests/fuzz/Makefile; pooler/ itself is untouched);
#   2. runs every fuzz target (startup/auth, message framing, config,
#      userlist) for FUZZ_SECONDS (default 10): no crash, no sanitizer report;
#   3. runs the whole pooler suite (tests/pooler/run: psql, pgbench simple /
#      extended / prepared, psycopg2, cancel, COPY, bad input, lying lengths,
#      vanishing clients, server restarts) against the sanitized binary, with
#      halt_on_error and leak detection: the suite must pass and the
#      sanitizers must have written no report.
# tests/pooler/run runs whatever binary POOLER_BIN names.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/tests/lib/assert.sh"
FUZZ_OUT=${FUZZ_OUT:-$ROOT/tests/fuzz/build}
export FUZZ_OUT
. "$ROOT/tests/lib/cluster.sh"
WORK=$(make_pg_dir sanitize)
trap '[ -z "${KEEP_TMP:-}" ] && rm -rf "$WORK"' EXIT

# 1. builds
if make -s -C "$ROOT/tests/fuzz" OUT="$FUZZ_OUT" all asan >"$WORK/build.log" 2>&1; then
	pass "fuzzers and the ASan+UBSan perfopt-pooler build from pooler/'s sources (clang-14, -Wall -Werror)"
else
	fail "fuzz build: $(tail -5 "$WORK/build.log")"
	assert_summary
	exit 1
fi
ASAN_BIN=$FUZZ_OUT/asan/perfopt-pooler
assert_match "the sanitized binary has AddressSanitizer in it" "__asan_init" "$(nm "$ASAN_BIN" 2>/dev/null | grep -m1 -o __asan_init)"

# 2. every fuzz target, briefly
while IFS= read -r line; do
	case $line in
		"ok - "*) pass "${line#ok - }" ;;
		"not ok - "*) fail "${line#not ok - }" ;;
		"    "*) echo "$line" ;;
	esac
done < <(bash "$ROOT/tests/fuzz/run" "${FUZZ_SECONDS:-10}" 2>&1)

# 3. the pooler suite against the sanitized binary
mkdir -p "$WORK/san"
POOLER_BIN=$ASAN_BIN \
	ASAN_OPTIONS="halt_on_error=1:detect_leaks=1:log_path=$WORK/san/asan" \
	UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$WORK/san/ubsan" \
	bash "$ROOT/tests/pooler/run" >"$WORK/suite.log" 2>&1
summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$WORK/suite.log" | tail -1)
assert_match "pooler suite passes against the ASan+UBSan binary" "^[1-9][0-9]* passed, 0 failed$" "$summary"
[[ $summary =~ " 0 failed" ]] || grep '^not ok' "$WORK/suite.log" | cut -c1-300 | head -10
# checks the run could not bring about are said, not failed
grep -E '^skip - ' "$WORK/suite.log" | cut -c1-200
reports=$(ls "$WORK/san" | wc -l)
assert_eq "no AddressSanitizer, LeakSanitizer or UndefinedBehaviorSanitizer report from any pooler run" 0 "$reports"
if [ "$reports" -gt 0 ]; then
	grep -h -E 'ERROR:|SUMMARY:|runtime error' "$WORK"/san/* | sort | uniq -c | head -10
	grep -h -m6 -E '^ +#[0-9]+ .* in [a-z_]+ /' "$WORK"/san/* | head -12
fi
assert_summary
