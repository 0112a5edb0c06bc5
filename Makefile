# Entry points. `make run` and `make test` work from a fresh clone: they install the dependencies first.
# Extra arguments: `make run ARGS='--set http.port=9090'`, `make test ARGS='-L unit'`.
SHELL := /bin/bash
ARGS ?=
FORMAT_DIRS := config actors persistence http app tests tools bench

.PHONY: run run-cluster test test-sanitize build fuzz bench-http bench-db bench-auth bench-cache bench-debug bench-gateway bench-upload bench-overload bench-json bench-path bench-wakeups bench-cluster bench-connections bench-smoke bench-ops bench-plots clean format

run:
	scripts/run $(ARGS)

# Three nodes of one cluster behind nginx round-robin on :8080 (README, "A cluster").
run-cluster:
	scripts/run-cluster $(ARGS)

test:
	scripts/test $(ARGS)

# The suite under ASan+UBSan (build-asan/), then the concurrency tests under TSan (build-tsan/).
test-sanitize:
	scripts/test-sanitize $(ARGS)

# Every libFuzzer target of tests/fuzz for FUZZ_SECONDS each (default 60); `make fuzz FUZZ_SECONDS=600`.
FUZZ_SECONDS ?= 60
fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) scripts/fuzz

build:
	TROUPE_DEPS=build scripts/install-deps
	cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
	cmake --build build -j2

bench-http:
	bench/http.sh

bench-db:
	bench/db.sh

bench-auth:
	bench/auth.sh

bench-cache:
	bench/cache.sh

bench-debug:
	bench/debug.sh

bench-gateway:
	bench/gateway.sh

bench-upload:
	bench/upload.sh

bench-overload:
	bench/overload.sh

bench-json:
	bench/json.sh

bench-cluster:
	bench/cluster.sh

bench-path:
	bench/path.sh

bench-wakeups:
	bench/wakeups.sh

# The short performance check `make test` ends with: ratios in one run against generous floors (bench/smoke.sh).
bench-smoke:
	bench/smoke.sh

# What the history sampler costs: throughput with and without it, and its CPU per sample (bench/ops.sh).
bench-ops:
	bench/ops.sh

# PNGs of the series recorded in bench/RESULTS.md, under bench/plots/ (bench/plots.sh).
bench-plots:
	bench/plots.sh

bench-connections:
	bench/connections.sh

clean:
	rm -rf build build-asan build-tsan

format:
	find $(wildcard $(FORMAT_DIRS)) -type f \( -name '*.cpp' -o -name '*.hpp' \) -print0 | xargs -0 -r clang-format -i
