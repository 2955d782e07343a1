# sandfleet — thin wrapper over CMake. The two commands a newcomer needs:
#   make demo   install what it runs, build, then run the example workflows centrally
#               and through Redis
#   make test   build, then run every test (unit, integration, sanitizers, fuzz)
BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
CTEST_ARGS ?= --output-on-failure

.PHONY: all build deps demo test test-fast test-asan test-fuzz test-cgroup2 test-fresh compose-test \
        compose-test-docker bench bench-quick clean

all: build

deps:
	@bash scripts/deps.sh build

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j$(JOBS)

demo: build
	@bash scripts/deps.sh demo
	@bash scripts/demo.sh $(BUILD)/bin

# Every test: the normal build, the same tests under ASan+UBSan, and a short
# libFuzzer run per parser of outside input.
test:
	@bash scripts/deps.sh test
	@$(MAKE) --no-print-directory test-fast test-asan test-fuzz
	@echo "make test: all suites passed"

test-fast: build
	@bash scripts/deps.sh test
	@cd $(BUILD) && ctest $(CTEST_ARGS) -L 'unit|integration' -j1

test-asan:
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DENABLE_ASAN=ON -DENABLE_UBSAN=ON >/dev/null
	@cmake --build $(ASAN_BUILD) -j$(JOBS)
	@cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	    ctest $(CTEST_ARGS) -L 'unit|integration' -j1

test-fuzz:
	@CC=clang cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=Debug -DENABLE_FUZZ=ON \
	    -DENABLE_ASAN=ON -DENABLE_UBSAN=ON >/dev/null
	@cmake --build $(FUZZ_BUILD) -j$(JOBS)
	@cd $(FUZZ_BUILD) && ctest $(CTEST_ARGS) -L fuzz

bench:
	@bash scripts/deps.sh bench
	@bash bench/run.sh full

bench-quick:
	@bash scripts/deps.sh bench
	@bash bench/run.sh quick

# The sandbox suites on a real cgroup v2 kernel (Debian's, under qemu), as
# root and as an unprivileged user with a delegated cgroup: tests/vm/run.sh.
test-cgroup2: build
	@bash tests/vm/run.sh

# The README's commands in a fresh Debian 12 container (debootstrap image,
# podman): make demo, every unit and integration test, a fuzz build.
test-fresh:
	@bash tests/fresh/run.sh

compose-test:   # docker-compose stack (Redis, 3 workers, kafka profile) on podman, end to end: docs/deploy.md
	@bash deploy/compose-test.sh

compose-test-docker:   # the same against Debian's Docker engine (after compose-test: its images)
	@bash deploy/test/compose-test-docker.sh

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
