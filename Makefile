# Thin wrapper: `make run` and `make test` are the README's two commands.
BUILD ?= build
BUILD_SAN ?= build-sanitize
JOBS ?= $(shell nproc 2>/dev/null || echo 2)

# Debian 12 packages: to build and run, then for the README and the tests (curl, real
# Redis, Chromium for the browser client; nginx, systemd-analyze, strace and logrotate
# for the deployment examples; the Prometheus client's parser reads /metrics). Node
# comes from Debian too unless one is installed.
# Debian starts redis-server and nginx as system services when it installs them; the
# tests never use those (`systemctl disable --now nginx` if you do not want it).
DEB_PACKAGES = build-essential cmake pkg-config git \
	libwebsockets-dev libwebsockets-evlib-uv libuv1-dev libluajit2-5.1-dev \
	libhiredis-dev libyaml-dev libjwt-dev libssl-dev libsodium-dev libjemalloc-dev libcmocka-dev \
	zlib1g-dev redis-server curl chromium nginx systemd procps strace logrotate \
	python3-prometheus-client
# Only `make fuzz` needs these: `make test` replays the fuzz corpora with gcc.
FUZZ_PACKAGES = clang libclang-rt-14-dev

BUILD_FUZZ ?= build-fuzz
FUZZ_SECONDS ?= 120
FUZZ_TARGETS ?= json config api_body redis_cluster broker_wire

.PHONY: all deps build run test test-unit test-integration test-sanitize check-config bench fuzz clean

all: build

deps:
	@missing=""; \
	for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; \
	done; \
	command -v node >/dev/null 2>&1 || missing="$$missing nodejs"; \
	command -v npm >/dev/null 2>&1 || missing="$$missing npm"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "make deps: installing$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else \
	    echo "moonwire needs these Debian packages; install them with:"; \
	    echo "  sudo apt-get install -y$$missing"; \
	    exit 1; \
	  fi; \
	fi

$(BUILD)/Makefile: CMakeLists.txt
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null

build: deps $(BUILD)/Makefile
	cmake --build $(BUILD) -j$(JOBS)

run: build
	./$(BUILD)/moonwire serve

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund

test: build node_modules/.package-lock.json
	cd $(BUILD) && ctest --output-on-failure
	MOONWIRE_BIN=$(CURDIR)/$(BUILD)/moonwire node --test tests/web/ tests/integration/

# The same suites against an AddressSanitizer + UndefinedBehaviorSanitizer build, with
# leak detection: CI runs this after `make test`.
test-sanitize: deps node_modules/.package-lock.json
	cmake -S . -B $(BUILD_SAN) -DCMAKE_BUILD_TYPE=Debug -DMW_SANITIZE=ON >/dev/null
	cmake --build $(BUILD_SAN) -j$(JOBS)
	cd $(BUILD_SAN) && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  MOONWIRE_BIN=$(CURDIR)/$(BUILD_SAN)/moonwire MOONWIRE_SANITIZE=1 node --test tests/integration/

# moonwire, the Node ws peer (and a uWebSockets peer with UWS_PEER=binary) side by side
# through the benchmark scenarios (tests/bench/run.sh, docs/performance.md). ~15 minutes;
# ROUNDS, SCENARIOS, DURATION, IDLE_N, UWS_PEER, ... (tests/bench/README.md)
bench: build node_modules/.package-lock.json
	BUILD=$(BUILD) bash tests/bench/run.sh

# libFuzzer over tests/fuzz's targets, FUZZ_SECONDS (120) each, with clang (the only
# target that needs it; `make test` replays the committed seeds with gcc). New inputs
# go to $(BUILD_FUZZ)/corpus/TARGET; a crash leaves its input in $(BUILD_FUZZ) and
# stops here. docs/security.md has the figures of the last run.
fuzz:
	@$(MAKE) --no-print-directory deps DEB_PACKAGES="$(DEB_PACKAGES) $(FUZZ_PACKAGES)"
	CC=clang cmake -S . -B $(BUILD_FUZZ) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMW_FUZZ=ON >/dev/null
	cmake --build $(BUILD_FUZZ) -j$(JOBS) --target $(addprefix fuzz_,$(FUZZ_TARGETS))
	@set -e; for t in $(FUZZ_TARGETS); do \
	  mkdir -p $(BUILD_FUZZ)/corpus/$$t; \
	  echo "== fuzz_$$t: $(FUZZ_SECONDS) s"; \
	  ( cd $(BUILD_FUZZ) && ASAN_OPTIONS=detect_leaks=1 ./fuzz_$$t -max_total_time=$(FUZZ_SECONDS) \
	    -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 corpus/$$t $(CURDIR)/tests/fuzz/corpus/$$t ) \
	    > $(BUILD_FUZZ)/fuzz_$$t.log 2>&1 || { tail -40 $(BUILD_FUZZ)/fuzz_$$t.log; exit 1; }; \
	  grep -E "^stat::number_of_executed_units|^stat::new_units_added|^stat::peak_rss_mb" $(BUILD_FUZZ)/fuzz_$$t.log; \
	done

clean:
	rm -rf $(BUILD) $(BUILD_SAN) $(BUILD_FUZZ)
