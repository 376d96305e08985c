# ngx_http_credit_module
#
#   make            build the dynamic module against Debian's nginx
#   make demo       build, start memcached + mock upstream + nginx, show it
#   make stop       stop what make demo started
#   make test       build and run the whole suite (t/*.t)
#   make test-upstream TEST_NGINX_LIB=DIR
#                   the same under upstream Test::Nginx (DIR: the lib/ of
#                   a clone of https://github.com/openresty/test-nginx)
#   make check-mem  the suite against an AddressSanitizer nginx + module,
#                   with the module's object reuse off, then on; then
#                   against an UndefinedBehaviorSanitizer one
#   make static     build the module statically into nginx's source tree
#                   (and run the suite against it); NGINX_SUITE=trixie
#                   does it with Debian trixie's nginx (1.26) instead
#   make bench      plain proxy vs metered proxy, with wrk
#   make bench-no-store  the same with a build whose charges skip memcached
#                   (the module's own cost, apart from the round trip)
#   make bench-lua  make bench plus the straightforward Lua (OpenResty)
#                   way of metering, for comparison
#   make bench-split  make bench plus where each row's CPU went, per process
#   make bench-hard   only the hard case, 10 rounds: two workers, many
#                   accounts, plain against fixed cost and three parameters
#   make faults     reload, upstream failures, memcached restart and stall
#                   under load, with the books reconciled after each run
#   make faults-mem the same against an AddressSanitizer nginx + module
#   make coverage   the suite against a gcov build: the module's lines
#                   that ran, per file (COVERAGE_FAULTS=1: and scripts/faults)
#   make fuzz       the libFuzzer targets, FUZZ_SECONDS each

SHELL          := /bin/bash
TOP            := $(CURDIR)
BUILD          := $(TOP)/build
NGINX_SRC      ?= /usr/share/nginx/src
MODULE         := $(BUILD)/nginx-dyn/objs/ngx_http_credit_module.so
SOURCES        := config $(wildcard ngx_http_credit_module/*.[ch])
NGINX_BIN      ?= /usr/sbin/nginx
MEMCACHED_PORT ?= 11311
TEST_FILES     ?= t/*.t
NGINX_SUITE    ?= bookworm
SUITE_SUFFIX   := $(if $(filter-out bookworm,$(NGINX_SUITE)),-$(NGINX_SUITE))
STATIC         := $(BUILD)/nginx-static$(SUITE_SUFFIX)

export TEST_NGINX_MEMCACHED_PORT ?= $(MEMCACHED_PORT)

.PHONY: all build setup demo stop test test-upstream check-mem static bench \
	bench-no-store bench-lua bench-split bench-hard fuzz faults faults-mem \
	coverage clean

all: build

setup:
	@./scripts/setup

build: setup $(MODULE)

# Debian's nginx source, configure flags and compiler options, plus this
# module (scripts/configure-dyn); configured again whenever the addon file
# or that script changes
$(BUILD)/nginx-dyn/objs/Makefile: config scripts/configure-dyn
	@mkdir -p $(BUILD)
	@rm -rf $(BUILD)/nginx-dyn && cp -r $(NGINX_SRC) $(BUILD)/nginx-dyn
	@cd $(BUILD)/nginx-dyn && NGINX_BIN=$(NGINX_BIN) \
	    $(TOP)/scripts/configure-dyn $(TOP) $(BUILD)/configure-dyn.log

$(MODULE): $(SOURCES) $(BUILD)/nginx-dyn/objs/Makefile
	$(MAKE) -s -C $(BUILD)/nginx-dyn -f objs/Makefile modules \
	    CFLAGS="$$(sed -n 's/^CFLAGS = //p' \
	        $(BUILD)/nginx-dyn/objs/Makefile) -Werror"
	@echo "built $(MODULE)"

demo: build
	@./scripts/demo start

stop:
	@./scripts/demo stop

test: build
	@TEST_NGINX_BINARY=$(NGINX_BIN) TEST_NGINX_LOAD_MODULES=$(MODULE) \
	    ./scripts/run-tests $(TEST_FILES)

# the .t files run unchanged under upstream Test::Nginx; its Perl
# dependencies are Debian packages, Test::Nginx itself is not
test-upstream: build
	@[ -f "$(TEST_NGINX_LIB)/Test/Nginx/Socket.pm" ] \
	    || { echo "make test-upstream: set TEST_NGINX_LIB to the lib/" \
	              "directory of upstream Test::Nginx" >&2; exit 1; }
	@./scripts/setup libtest-base-perl libtest-longstring-perl \
	    liblist-moreutils-perl libtext-diff-perl libhttp-message-perl
	@PERL5LIB=$(TEST_NGINX_LIB) TEST_NGINX_BINARY=$(NGINX_BIN) \
	    TEST_NGINX_LOAD_MODULES=$(MODULE) ./scripts/run-tests $(TEST_FILES)

# three times: under AddressSanitizer with every object freed (a use after
# free is seen), then with the objects kept for reuse, as the module ships;
# then under UndefinedBehaviorSanitizer
check-mem: setup
	@for kind in "" keep ubsan; do \
	    dir=asan$${kind:+-$$kind}; \
	    case "$$kind" in \
	    ubsan) echo "check-mem: UndefinedBehaviorSanitizer";; \
	    *) echo "check-mem: AddressSanitizer, the module's objects:" \
	           "$${kind:-free}";; \
	    esac; \
	    ./scripts/build-asan $$kind || exit 1; \
	    rm -rf $(BUILD)/$$dir && mkdir -p $(BUILD)/$$dir; \
	    TEST_NGINX_BINARY=$(BUILD)/nginx-$$dir/objs/nginx \
	    TEST_NGINX_LOAD_MODULES= \
	    ASAN_OPTIONS=detect_leaks=1:log_path=$(BUILD)/$$dir/report \
	    UBSAN_OPTIONS=print_stacktrace=1:log_path=$(BUILD)/$$dir/report \
	        ./scripts/run-tests $(TEST_FILES) || exit 1; \
	    ./scripts/check-asan-reports $(BUILD)/$$dir || exit 1; \
	done

# also compiles a harness program against that tree, as scripts/bench-body
# and the fuzz targets do, so that a change to the build that breaks them
# shows here
static: setup
	@NGINX_SUITE=$(NGINX_SUITE) ./scripts/build-static
	@NGINX_BUILD=$(STATIC) ./scripts/build-harness bench-body $(BUILD) \
	    >/dev/null
	@TEST_NGINX_BINARY=$(STATIC)/objs/nginx TEST_NGINX_LOAD_MODULES= \
	    ./scripts/run-tests $(TEST_FILES)

bench: build
	@./scripts/bench

bench-no-store: setup
	@./scripts/build-no-store
	@BENCH_MODULE=$(BUILD)/nginx-no-store/objs/ngx_http_credit_module.so \
	    ./scripts/bench

bench-lua: build
	@./scripts/setup libnginx-mod-http-lua
	@BENCH_LUA=1 ./scripts/bench

bench-split: build
	@BENCH_SPLIT=1 ./scripts/bench

bench-hard: build
	@BENCH_WORKERS=2 BENCH_TRAFFIC=accounts \
	    BENCH_VARIANTS="plain fixed priced" BENCH_ROUNDS=10 BENCH_SPLIT=1 \
	    ./scripts/bench

faults: build
	@./scripts/faults

# the eight fault runs with the proxies built with AddressSanitizer (the
# module's objects freed, not reused), then their reports read as make
# check-mem reads its own; the workers run as nobody, hence the mode; a
# leak report does not fail `nginx -s reload` (nginx never frees its
# first pool), check-asan-reports judges them
faults-mem: setup
	@./scripts/build-asan
	@rm -rf $(BUILD)/faults-asan && mkdir -p $(BUILD)/faults-asan \
	    && chmod 1777 $(BUILD)/faults-asan
	@FAULT_NGINX=$(BUILD)/nginx-asan/objs/nginx FAULT_MODULE= \
	    ASAN_OPTIONS=detect_leaks=1:log_path=$(BUILD)/faults-asan/report \
	    LSAN_OPTIONS=exitcode=0 \
	    ./scripts/faults
	@./scripts/check-asan-reports $(BUILD)/faults-asan

fuzz:
	@./scripts/fuzz

coverage: setup
	@TEST_FILES="$(TEST_FILES)" ./scripts/coverage

clean:
	rm -rf $(BUILD) t/servroot t/servroot-*
