# The two commands a newcomer needs: `make run` and `make test`.
# Both install missing Debian packages first (scripts/install-deps.sh).
BUILD    ?= build
LISTEN   ?= 127.0.0.1:8000
# `make run DEMO=1`: the server plus simulated meters (tools/sim/demo.sh),
# in a database of its own so the demo meters stay out of your real data.
DEMO     ?=
ifeq ($(DEMO),1)
DB       ?= ./data/demo.db
endif
DB       ?= ./data/meterhub.db
TYPE     ?= RelWithDebInfo
JOBS     ?= $(shell nproc)
CTEST_ARGS ?=
# Extra server flags for `make run`, e.g. ARGS=--public-read
ARGS     ?=

.PHONY: all deps configure build run test bench bench-scaleout clean format soak test-asan test-asan-e2e fuzz

all: build

deps:
	@./scripts/install-deps.sh

$(BUILD)/build.ninja:
	@$(MAKE) --no-print-directory deps
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=$(TYPE) -DCMAKE_CXX_COMPILER_LAUNCHER=ccache

configure: $(BUILD)/build.ninja

build: deps configure
	cmake --build $(BUILD) -j $(JOBS)

run: deps configure
ifeq ($(DEMO),1)
	cmake --build $(BUILD) -j $(JOBS) --target meterhub web meterhub-sim
	@./tools/sim/demo.sh $(BUILD) $(LISTEN) $(DB) $(ARGS)
else
	cmake --build $(BUILD) -j $(JOBS) --target meterhub web
	@echo
	@echo "  meterhub: dashboard on http://$(LISTEN)/, API reference on http://$(LISTEN)/docs"
	@echo "  API on http://$(LISTEN)/api/v1/meters, live data on ws://$(LISTEN)/ws"
	@echo "  (open it from the LAN with: make run LISTEN=0.0.0.0:8000)"
	@echo "  Sign in with the admin token printed below at the first start; lost it? run"
	@echo "  $(BUILD)/meterhub token create --scope admin --name me --db $(DB)"
	@echo "  Register a device: $(BUILD)/meterhub meter add kitchen --db $(DB)"
	@echo
	$(BUILD)/meterhub --listen $(LISTEN) --db $(DB) $(ARGS)
endif

test: build
	ctest --test-dir $(BUILD) --output-on-failure -j 2 $(CTEST_ARGS)

bench: deps configure
	./scripts/install-deps.sh --bench
	cmake --build $(BUILD) -j $(JOBS)
	./bench/run.sh

# Scale-out (issue 8): 1, 2, 3 nodes on PostgreSQL vs one on SQLite, side by
# side (bench/scaleout.py, a throwaway PostgreSQL cluster; about 3 minutes).
bench-scaleout: deps
	./scripts/install-deps.sh --bench
	cmake -S . -B build-bench -G Ninja -DCMAKE_BUILD_TYPE=Release -DMETERHUB_TESTS=OFF \
	  -DCMAKE_CXX_COMPILER_LAUNCHER=ccache
	cmake --build build-bench -j $(JOBS) --target meterhub meterhub-wsprobe
	/usr/bin/python3 bench/scaleout.py --bin build-bench/meterhub --probe build-bench/meterhub-wsprobe

# Bounded soak (not in CI): 1000 meters, 2000 churning WebSockets, history
# queries; SOAK_SECONDS (default 600) long. See bench/soak/soak.py.
SOAK_SECONDS ?= 600
soak: deps configure
	cmake --build $(BUILD) -j $(JOBS) --target meterhub
	/usr/bin/python3 bench/soak/soak.py --bin $(BUILD)/meterhub --seconds $(SOAK_SECONDS)

clean:
	rm -rf $(BUILD)

format:
	clang-format -i $$(git ls-files '*.cpp' '*.hpp')

# Sanitizers and fuzzing (docs/testing.md): one clang build dir for both, with
# ASan + UBSan and libFuzzer coverage on every target.
ASAN_BUILD   ?= build-asan
FUZZ_SECONDS ?= 60
CLANGXX      ?= clang++-16
# Function names and lines in reports (clang-16 alone finds no symbolizer).
SYMBOLIZER  ?= $(firstword $(shell for s in llvm-symbolizer-16 llvm-symbolizer addr2line; do command -v $$s; done))
SAN_ENV = ASAN_OPTIONS=$${ASAN_OPTIONS:-detect_leaks=1:check_initialization_order=1:external_symbolizer_path=$(SYMBOLIZER)} \
          UBSAN_OPTIONS=$${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1:external_symbolizer_path=$(SYMBOLIZER)}

$(ASAN_BUILD)/build.ninja:
	@$(MAKE) --no-print-directory deps
	@./scripts/install-deps.sh --clang
	cmake -S . -B $(ASAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DCMAKE_CXX_COMPILER=$(CLANGXX) -DCMAKE_CXX_COMPILER_LAUNCHER=ccache \
	  -DMETERHUB_FUZZ=ON -DMETERHUB_BENCH=OFF

# The unit tests under the sanitizers (CI), and the PostgreSQL store's
# (contract suite and its own tests) against a throwaway cluster.
test-asan: $(ASAN_BUILD)/build.ninja
	cmake --build $(ASAN_BUILD) -j $(JOBS) --target unit_tests store_contract_tests \
	  pg_unit_tests pg_registry_tests pg_listener_tests
	$(SAN_ENV) $(ASAN_BUILD)/unit_tests --gtest_brief=1
	$(SAN_ENV) ./scripts/with-pg.sh sh -c '$(ASAN_BUILD)/store_contract_tests --gtest_brief=1 && \
	  $(ASAN_BUILD)/pg_unit_tests --gtest_brief=1 && $(ASAN_BUILD)/pg_registry_tests --gtest_brief=1 && \
	  $(ASAN_BUILD)/pg_listener_tests --gtest_brief=1'

# The end-to-end tests against the sanitized server (CI).
test-asan-e2e: $(ASAN_BUILD)/build.ninja
	cmake --build $(ASAN_BUILD) -j $(JOBS) --target meterhub meterhub-sim web
	cd tests/e2e && $(SAN_ENV) METERHUB_SANITIZED=1 METERHUB_BIN=$(abspath $(ASAN_BUILD))/meterhub \
	  /usr/bin/python3 -m pytest -q -p no:cacheprovider $(E2E_ARGS) .

# Every fuzz target for FUZZ_SECONDS each (fuzz/run.sh).
fuzz: $(ASAN_BUILD)/build.ninja
	cmake --build $(ASAN_BUILD) -j $(JOBS) --target fuzz_targets
	FUZZ_SECONDS=$(FUZZ_SECONDS) ./fuzz/run.sh $(ASAN_BUILD)
