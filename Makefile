# jnx_auth: PostgreSQL extension (PGXS) + jnx-shim, and every developer target.
#
#   make            build the extension and the shim
#   make install    install the extension into the PostgreSQL found by pg_config
#   make run        set up a private cluster, install, start the shim behind nginx (see README)
#   make test       the same set-up, then every suite (what CI runs)
#   make installcheck   pg_regress against a running server (PGHOST/PGPORT/PGUSER)

EXTENSION_NAME = jnx_auth
EXTVERSION    := $(shell sed -n "s/^default_version = '\(.*\)'/\1/p" extension/$(EXTENSION_NAME).control)

MODULE_big = $(EXTENSION_NAME)
CORE_SRCS  = $(wildcard extension/core/*.cpp)
PG_SRCS    = $(wildcard extension/pg/*.cpp)
OBJS       = $(CORE_SRCS:.cpp=.o) $(PG_SRCS:.cpp=.o)

# The install script is assembled from extension/schema: 00 and 10 hold what
# only a fresh install runs (tables); 20 onwards only CREATE OR REPLACE and
# idempotent statements, so the upgrade script reuses them after its ALTERs.
# Released install scripts are kept frozen in extension/released.
SCHEMA_INSTALL = $(sort $(wildcard extension/schema/0*.sql extension/schema/1*.sql))
SCHEMA_SHARED  = $(sort $(wildcard extension/schema/[2-9]*.sql))
UPGRADES       = $(notdir $(wildcard extension/upgrade/*.sql))

MODULEDIR  = extension
DATA       = extension/$(EXTENSION_NAME).control $(wildcard extension/released/*.sql)
DATA_built = extension/$(EXTENSION_NAME)--$(EXTVERSION).sql $(addprefix extension/,$(UPGRADES))
EXTRA_CLEAN = extension/$(EXTENSION_NAME)--*.sql $(OBJS:.o=.d)

REGRESS      = setup webhook_sign webhook_verify secrets ingest sync_users sync_orgs \
               sync_memberships replay session privacy stats
REGRESS_OPTS = --inputdir=.

PG_CONFIG ?= pg_config
PG_INCLUDE_SERVER := $(shell $(PG_CONFIG) --includedir-server 2>/dev/null)
# PostgreSQL's headers as system headers: -Werror applies to our code only.
PG_CPPFLAGS = -isystem $(PG_INCLUDE_SERVER) -Iextension
# -MMD: PGXS tracks no header dependencies here; without them a changed header
# leaves stale objects that still link (an undeclared function went unnoticed).
PG_CXXFLAGS = -std=c++17 -Wall -Wextra -Wshadow=local -Werror -fvisibility=hidden -MMD -MP
SHLIB_LINK  = -lssl -lcrypto -ljansson -lstdc++

# No LLVM bitcode: JIT inlining of these functions buys nothing, and clang
# would need its own flags for C++17.
override with_llvm = no

PGXS := $(shell $(PG_CONFIG) --pgxs 2>/dev/null)
ifeq ($(PGXS),)
# A fresh machine has no pg_config yet: only deps, run and test work, and they
# install the packages before building in a sub-make.
all install installcheck:
	@echo "pg_config not found: run 'make deps' (or 'make run' / 'make test', which do it) first" >&2
	@exit 1
else
include $(PGXS)
endif

-include $(OBJS:.o=.d)

# Everything below is ours, outside PGXS.
BUILD      = build
CXX_STD    = -std=c++17 -Wall -Wextra -Wshadow=local -Werror -O2 -g
OPENSSL_LIBS = -lssl -lcrypto

extension/$(EXTENSION_NAME)--$(EXTVERSION).sql: $(SCHEMA_INSTALL) $(SCHEMA_SHARED)
	cat $^ > $@

extension/$(EXTENSION_NAME)--%.sql: extension/upgrade/$(EXTENSION_NAME)--%.sql $(SCHEMA_SHARED)
	cat $^ > $@

ifneq ($(PGXS),)
all: shim/jnx-shim

# session.sql reads keys and tokens minted at test time (they expire in an hour).
installcheck: regress-tokens
endif

# --- shim -------------------------------------------------------------------
HTTPLIB_FLAGS := $(shell pkg-config --cflags --libs cpp-httplib 2>/dev/null)
# Its defines (CPPHTTPLIB_OPENSSL_SUPPORT: the HTTPS client of refresh-jwks), for clang-tidy.
HTTPLIB_CFLAGS := $(shell pkg-config --cflags cpp-httplib 2>/dev/null)
PQ_INCLUDE    := $(shell $(PG_CONFIG) --includedir 2>/dev/null)
SHIM_SRCS      = $(wildcard shim/*.cpp)
SHIM_HDRS      = $(wildcard shim/*.h)

shim/jnx-shim: $(SHIM_SRCS) $(SHIM_HDRS) extension/$(EXTENSION_NAME).control
	$(CXX) $(CXX_STD) -DJNX_EXTVERSION='"$(EXTVERSION)"' -I$(PQ_INCLUDE) -o $@ $(SHIM_SRCS) \
	    $(HTTPLIB_FLAGS) -lpq -lpthread -ljansson $(OPENSSL_LIBS)

# --- unit tests (GoogleTest, core only) ----------------------------------------
UNIT_SRCS = $(wildcard test/unit/*.cpp)
$(BUILD)/jnx-unit: $(UNIT_SRCS) $(CORE_SRCS) $(wildcard extension/core/*.h test/tools/*.h)
	@mkdir -p $(BUILD)
	$(CXX) $(CXX_STD) -Iextension -o $@ $(UNIT_SRCS) $(CORE_SRCS) -lgtest -lgtest_main -lpthread -ljansson $(OPENSSL_LIBS)

unit: $(BUILD)/jnx-unit
	$(BUILD)/jnx-unit

# --- test tools -----------------------------------------------------------------
$(BUILD)/jnx-mint: test/tools/mint.cpp test/tools/token_util.h $(CORE_SRCS) $(wildcard extension/core/*.h)
	@mkdir -p $(BUILD)
	$(CXX) $(CXX_STD) -Iextension -o $@ $< $(CORE_SRCS) -ljansson $(OPENSSL_LIBS)

# LD_PRELOAD fault injector for the shim tests (test/tools/new_limit.cpp).
$(BUILD)/new_limit.so: test/tools/new_limit.cpp
	@mkdir -p $(BUILD)
	$(CXX) $(CXX_STD) -shared -fPIC -o $@ $<

tools: $(BUILD)/jnx-mint $(BUILD)/new_limit.so

export JNX_TOKENS_FILE = $(abspath $(BUILD))/regress-tokens/tokens.psql
export JNX_SVIX_VECTOR_FILE = $(abspath test/fixtures/svix_vector.psql)
regress-tokens: $(BUILD)/jnx-mint
	@bash test/env/tokens.sh $(BUILD)/regress-tokens >/dev/null

# --- fuzzing (libFuzzer, ASan + UBSan) -------------------------------------------
FUZZ_CXX   = clang++-14
FUZZ_FLAGS = -std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
FUZZ_TARGETS = $(patsubst test/fuzz/%.cpp,$(BUILD)/%,$(wildcard test/fuzz/fuzz_*.cpp))
FUZZ_SECONDS ?= 300

$(BUILD)/fuzz_%: test/fuzz/fuzz_%.cpp $(CORE_SRCS) $(wildcard extension/core/*.h test/tools/*.h)
	@mkdir -p $(BUILD)
	$(FUZZ_CXX) $(FUZZ_FLAGS) -Iextension -o $@ $< $(CORE_SRCS) -ljansson $(OPENSSL_LIBS)

fuzz: $(FUZZ_TARGETS)
	FUZZ_SECONDS=$(FUZZ_SECONDS) bash test/fuzz/run.sh $(FUZZ_TARGETS)

# --- pg_cron retention suite (its own throwaway cluster; the installed extension) ---
cron-test:
	bash test/cron/run.sh

# --- benchmarks (not part of make test) ------------------------------------------
$(BUILD)/bench_webhook: test/bench/bench_webhook.cpp test/bench/bench_util.h $(CORE_SRCS) $(wildcard extension/core/*.h)
	@mkdir -p $(BUILD)
	$(CXX) -std=c++17 -Wall -Wextra -Werror -O2 -Iextension -o $@ $< $(CORE_SRCS) -ljansson $(OPENSSL_LIBS)

$(BUILD)/loadgen: test/bench/loadgen.cpp $(CORE_SRCS) $(wildcard extension/core/*.h)
	@mkdir -p $(BUILD)
	$(CXX) $(CXX_STD) -Iextension -I$(PQ_INCLUDE) -o $@ $< $(CORE_SRCS) $(HTTPLIB_FLAGS) -lpq -lpthread -ljansson $(OPENSSL_LIBS)

$(BUILD)/bench_token: test/bench/bench_token.cpp test/bench/bench_util.h test/tools/token_util.h $(CORE_SRCS) $(wildcard extension/core/*.h)
	@mkdir -p $(BUILD)
	$(CXX) -std=c++17 -Wall -Wextra -Werror -O2 -Iextension -o $@ $< $(CORE_SRCS) -ljansson $(OPENSSL_LIBS)

bench: $(BUILD)/bench_webhook $(BUILD)/bench_token $(BUILD)/loadgen $(BUILD)/jnx-mint all
	bash test/bench/run.sh

# --- development environment -----------------------------------------------------
deps:
	bash test/env/deps.sh

run: deps
	$(MAKE) all tools
	$(MAKE) install
	@bash test/env/cluster.sh run

stop:
	@bash test/env/cluster.sh stop

psql:
	@bash test/env/cluster.sh psql

# Drop and recreate the dev database with the installed extension (data lost).
reset: install
	@bash test/env/cluster.sh reset

sample-webhook:
	@bash test/env/cluster.sh sample-webhook

resend-webhook:
	@bash test/env/cluster.sh resend-webhook

# A session token for the dev key pair of make run (valid one hour).
dev-token:
	@bash test/env/cluster.sh dev-token $(SUB) $(ORG) $(ROLE)

test: deps
	$(MAKE) all tools
	$(MAKE) install
	bash test/run-all.sh

# --- symbol clashes ---------------------------------------------------------------
# Inside a backend, a name the postgres executable exports wins over the same
# name in a library we link: jansson's json_object() called from our module
# runs PostgreSQL's json_object instead, and crashes. Fail when a symbol we
# import is exported both by the server and by one of our other libraries.
PG_BINDIR := $(shell $(PG_CONFIG) --bindir 2>/dev/null)
symbols-check: all
	@mkdir -p $(BUILD)
	@nm -D --defined-only $(PG_BINDIR)/postgres | awk '{print $$3}' | sort -u > $(BUILD)/postgres.syms
	@nm -D --undefined-only $(MODULE_big)$(DLSUFFIX) | awk '{print $$2}' | sed 's/@.*//' | sort -u > $(BUILD)/module.syms
	@nm -D --defined-only $$(ldd $(MODULE_big)$(DLSUFFIX) | awk '/=>/ {print $$3}' | \
	    grep -E 'jansson|libssl|libcrypto|stdc\+\+|gcc_s') | awk '{print $$3}' | sed 's/@.*//' | sort -u > $(BUILD)/libs.syms
	@clash=$$(comm -12 $(BUILD)/postgres.syms $(BUILD)/module.syms | comm -12 - $(BUILD)/libs.syms); \
	if [ -n "$$clash" ]; then echo "resolve to PostgreSQL's symbols, not our libraries': $$clash" >&2; exit 1; fi; \
	echo "symbols-check: $$(wc -l < $(BUILD)/module.syms) imported symbols, none shadowed by the postgres executable"

# --- style -----------------------------------------------------------------------
FORMAT_FILES = $(wildcard extension/core/*.cpp extension/core/*.h extension/pg/*.cpp extension/pg/*.h \
               shim/*.cpp shim/*.h test/unit/*.cpp test/fuzz/*.cpp test/bench/*.cpp test/bench/*.h test/tools/*.h \
               test/tools/*.cpp)
format:
	clang-format -i $(FORMAT_FILES)

format-check:
	clang-format --dry-run --Werror $(FORMAT_FILES)

lint:
	clang-tidy --quiet $(CORE_SRCS) $(SHIM_SRCS) -- -std=c++17 -Iextension -I$(PQ_INCLUDE) -DJNX_EXTVERSION='"$(EXTVERSION)"' $(HTTPLIB_CFLAGS)
	clang-tidy --quiet $(PG_SRCS) -- -std=c++17 -Iextension -isystem $(PG_INCLUDE_SERVER)

clean: clean-local
clean-local:
	rm -rf $(BUILD) shim/jnx-shim results regression.diffs regression.out

.PHONY: symbols-check dev-token regress-tokens tools unit fuzz cron-test bench deps run stop psql reset sample-webhook resend-webhook test format format-check lint clean-local
