# perfopt: PostgreSQL extension (PGXS) and the perfopt-pooler binary.
#
#   make deps      install missing Debian packages (no terminal needed)
#   make           build the extension (and the pooler)
#   make install   install both (needs root for PostgreSQL's directories)
#   make test      deps, -Wall -Werror build, install, every suite against a
#                  throwaway cluster; ends with "N passed, N failed"
#   make demo      sandbox cluster + sample app + workload + findings
#   make demo-stop stop the demo cluster
#   make bench     benchmarks against the anchors (pg_stat_statements, ...)
#   make fuzz      libFuzzer targets of the pooler's parsers, 60 s each
#   make fuzz-cache  the cache's differential tester, long: FUZZ_CACHE_READS
#                  checked reads (100,000), FUZZ_CACHE_SEED (random, printed)
#   make soak      2,000 clients through the pooler for a few minutes

MODULE_big = perfopt
EXTENSION = perfopt
# The extension's code lives in one folder per capability; headers are
# included from extension/ ("cache/cache.h").
EXT_DIRS = extension extension/common extension/stats extension/cache extension/advisor \
	extension/replica
EXT_SRCS = $(sort $(wildcard $(addsuffix /*.c,$(EXT_DIRS))))
EXT_HEADERS = $(wildcard $(addsuffix /*.h,$(EXT_DIRS)))
OBJS = $(EXT_SRCS:.c=.o)
# The install script is assembled from each capability's SQL, in this order.
EXT_SQL_PARTS = extension/perfopt.sql extension/stats/stats.sql extension/cache/cache.sql \
	extension/cache/cache_children.sql extension/advisor/advisor.sql
DATA_built = extension/perfopt--1.0.sql
PG_CPPFLAGS = -I$(srcdir)/extension
PG_CFLAGS = -Wall -Werror
NO_INSTALLCHECK = 1
# The suites, declared as contrib modules declare them.  They need perfopt
# preloaded, which an already running server may not have (hence
# NO_INSTALLCHECK): installcheck is tests/run, which starts instances with
# tests/perfopt.conf and runs these lists.
REGRESS = advisor_access_methods advisor_hypo advisor_recommend advisor_whatif bookkeeping_errors cache_columns cache_explain \
	cache_hierarchy cache_keys cache_partitions cache_planned cache_rls cache_rules \
	cache_serializable cache_settings cache_text cache_writes do_no_harm parallel_query session_report \
	stats_basic stats_privacy stats_slow
REGRESS_OPTS = --temp-config=$(srcdir)/tests/perfopt.conf
ISOLATION = bookkeeping_dropped cache_commit cache_keys cache_planned cache_race cache_serializable \
	stats_sessions
ISOLATION_OPTS = --inputdir=$(srcdir)/tests/isolation \
	--temp-config=$(srcdir)/tests/perfopt.conf
TAP_TESTS = 1
EXTRA_CLEAN = tests/results

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs 2>/dev/null)
ifeq ($(PGXS),)
# Before `make deps` there is no PGXS: let deps run, refuse the rest clearly.
.DEFAULT_GOAL := all
all install clean:
	@echo "PGXS not found: run 'make deps' first (installs postgresql-server-dev-15)"; exit 1
else
include $(PGXS)
endif

# PGXS tracks no header dependencies: rebuild every object when any header changes.
$(OBJS): $(EXT_HEADERS)

extension/perfopt--1.0.sql: $(EXT_SQL_PARTS)
	cat $^ > $@

HAVE_POOLER := $(wildcard pooler/Makefile)
ifneq ($(HAVE_POOLER),)
all: pooler-all
install: pooler-install
clean: pooler-clean
pooler-all:
	$(MAKE) -C pooler all
pooler-install: pooler-all
	$(MAKE) -C pooler install
pooler-clean:
	$(MAKE) -C pooler clean
.PHONY: pooler-all pooler-install pooler-clean
endif

deps:
	@bash tests/lib/deps.sh

test: deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory install >/dev/null
	@bash tests/run

installcheck:
	@bash tests/run

demo: deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory install >/dev/null
	@bash tests/demo/run

demo-stop:
	@bash tests/demo/run stop

bench: deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory install >/dev/null
	@bash tests/bench/run $(BENCH)

fuzz: deps
	@bash tests/fuzz/run $(FUZZ_SECONDS)

soak: deps
	@$(MAKE) --no-print-directory all
	@bash tests/soak/run

# Installs like test unless PG_BINDIR names a private PostgreSQL where
# perfopt is installed already (then nothing is installed system-wide).
FUZZ_CACHE_READS ?= 100000
FUZZ_CACHE_SEED ?= random
fuzz-cache: deps
	@$(MAKE) --no-print-directory all
	@[ -n "$$PG_BINDIR" ] || $(MAKE) --no-print-directory install >/dev/null
	@CACHE_DIFF_READS=$(FUZZ_CACHE_READS) CACHE_DIFF_SEED=$(FUZZ_CACHE_SEED) CACHE_DIFF_SHOW=10 \
		ONLY=cache_differential.sh SUITES=system bash tests/run

.PHONY: deps test installcheck demo demo-stop bench fuzz soak fuzz-cache
