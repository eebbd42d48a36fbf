# tests/lib/makevars.mk: prints one variable of the root Makefile, so that
# tests/run takes the suites' lists and options from the Makefile's
# REGRESS / ISOLATION / TAP_TESTS declarations instead of keeping its own.
#   make -s -f Makefile -f tests/lib/makevars.mk print-REGRESS
print-%:
	$(info $($*))
	@:
