# tests/lib/assert.sh: assertions for the shell-driven suites (tests/system,
# tests/pooler).  Each assertion prints "ok - ..." or "not ok - ...", and
# `assert_summary` prints the suite's closing "N passed, N failed" line that
# tests/run adds up.  Exit status of the suite: 0 only when nothing failed.

PASSED=0
FAILED=0

pass() { PASSED=$((PASSED + 1)); echo "ok - $*"; }
fail() { FAILED=$((FAILED + 1)); echo "not ok - $*"; }

# assert_eq DESC EXPECTED ACTUAL
assert_eq() {
	if [ "$2" = "$3" ]; then pass "$1"; else fail "$1: expected [$2], got [$3]"; fi
}

# assert_match DESC REGEX ACTUAL
assert_match() {
	if [[ $3 =~ $2 ]]; then pass "$1"; else fail "$1: [$3] does not match /$2/"; fi
}

# assert_true DESC CMD... : passes when CMD exits 0
assert_true() {
	local desc=$1; shift
	if "$@"; then pass "$desc"; else fail "$desc (command failed: $*)"; fi
}

assert_summary() {
	echo "$PASSED passed, $FAILED failed"
	[ "$FAILED" -eq 0 ]
}
