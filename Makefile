# Switchboard: `make test` is the one command CI runs (.ci/run). It installs
# what it needs into the project (.venv) and runs every check.

SHELL := /bin/bash
VENV  := .venv
BIN   := $(VENV)/bin
REQS  := requirements-dev.txt
STAMP := $(VENV)/.installed-$(shell sha1sum $(REQS) | cut -c1-12)
export PATH := $(CURDIR)/$(BIN):$(PATH)
export SAM_CLI_TELEMETRY := 0

.PHONY: test tools fmt-check clippy unit test-all invoke-events iam fuzz lint-template deploy-walkthrough build sizes bench bench-scale events clean js

FUNCTIONS := connect disconnect ping default actions api notify-user notify-connection commands deliver upstream

## test: everything CI checks — format, clippy, unit + moto + loopback tests, every event invoked, the IAM check, fuzzing, template lint, the deploy walk-through, release build, the JS client
test: tools fmt-check clippy test-all invoke-events iam fuzz lint-template deploy-walkthrough build sizes js

## tools: project-local Python tools (moto, cfn-lint, sam, cargo-lambda), installed once per requirements change
tools: $(STAMP)
$(STAMP): $(REQS)
	rm -rf $(VENV)
	python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r $(REQS)
	touch $@

fmt-check:
	cargo fmt --all -- --check

clippy:
	cargo clippy --workspace --all-targets --locked -- -D warnings

## unit: the tests that need nothing but cargo (moto tests are ignored here)
unit:
	cargo test --workspace --locked

## test-all: every test, with moto server on a free loopback port
test-all: tools
	scripts/with-moto.sh cargo test --workspace --locked --no-fail-fast -- --include-ignored

## invoke-events: every events/*.json through its function with cargo lambda watch, against moto (README, "Invoke locally")
invoke-events: tools
	scripts/invoke-events.sh

## iam: every AWS call the functions made in invoke-events (its fixtures and the IAM scenarios,
## recorded at each adapter's connector) against each function's role as SAM's translator expands
## template.yaml: a call the role denies, or a grant no call uses, fails (docs/testing.md, "The IAM check")
iam: tools
	$(BIN)/python -m unittest discover -s scripts -p 'test_iam_check.py'
	@test -s target/aws-calls/invoke-events.jsonl || { echo "iam: no recorded calls; run make invoke-events first" >&2; exit 1; }
	$(BIN)/python scripts/iam-check.py target/resources.json target/aws-calls/invoke-events.jsonl \
	  --report target/aws-calls/iam-report.md

## fuzz: the parser fuzz targets (fuzz/) for FUZZ_SECONDS each (30 here: CI also builds them cold, about 4 min)
FUZZ_SECONDS ?= 30
fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) scripts/fuzz.sh

lint-template: tools
	scripts/lint-template.sh $(BIN)

## deploy-walkthrough: the README's `sam deploy --guided` answered prompt by prompt in a pseudo-terminal,
## against moto, on a stand-in `sam build` output (no Rust build; about 45 s): fails on a prompt the
## walk-through does not answer or one SAM asks twice (scripts/guided-deploy-test.py)
deploy-walkthrough: tools
	timeout 300 scripts/with-moto.sh $(BIN)/python scripts/guided-deploy-test.py

## build: release bootstraps for the host target with cargo-lambda (sam build does arm64)
build: tools
	cargo lambda build --release --locked --compiler cargo $(addprefix -p ,$(FUNCTIONS))

## sizes: the size of each bootstrap built by `make build`
sizes:
	@for f in $(FUNCTIONS); do \
	  printf '%-18s %8s bytes\n' $$f $$(stat -c %s target/lambda/$$f/bootstrap); done

## bench: every benchmark against its same-run baseline, written to BENCHMARKS.md (not part of test;
## about 15 min on 2 cores: release bootstraps + hello-world, criterion, fan-out to 10,000 clients)
bench: tools
	cargo lambda build --release --locked --compiler cargo $(addprefix -p ,$(FUNCTIONS)) -p bench-hello
	cargo bench --locked --profile bench-fast -p switchboard-bench --bench handler -- --noplot
	$(MAKE) $(JS_STAMP)
	cd $(JS) && npm run build && node scripts/size.mjs --json > $(CURDIR)/target/js-size.json
	ulimit -n 65536 2>/dev/null || ulimit -n $$(ulimit -Hn); \
	  cargo run --locked --profile bench-fast -p switchboard-bench -- all --out BENCHMARKS.md

## bench-scale: broadcast and group send to 100,000 and 1,000,000 virtual connections and to
## 10,000 real sockets, under AWS's emulated Management API quota (README, "Scale"); writes the
## "Scale under AWS quotas" section of BENCHMARKS.md and BENCHMARKS-scale.json (not part of
## test or bench; each case bounded, about 7 min on 2 cores after the build). SCALE_N=100000 for the quick run.
SCALE_N ?= 100000,1000000
SCALE_REAL ?= 10000
bench-scale:
	ulimit -n 65536 2>/dev/null || ulimit -n $$(ulimit -Hn); \
	  timeout 3000 nice -n 5 cargo run --locked --profile bench-fast -p switchboard-bench -- \
	  scale --n $(SCALE_N) --real $(SCALE_REAL) --out BENCHMARKS.md

## js: the JavaScript client (clients/js): npm ci once per lockfile change, build, unit tests,
## integration tests against the local stack's debug binary, the demo bundle's freshness, the demo
## page in headless Chromium (Debian's package, installed when missing), the size budget
JS       := clients/js
JS_STAMP := $(JS)/node_modules/.installed-$(shell sha1sum $(JS)/package-lock.json | cut -c1-12)
CHROMIUM := /usr/bin/chromium
js: $(JS_STAMP) $(CHROMIUM)
	cargo build --locked -p switchboard-local
	cd $(JS) && npm run build && npm test && npm run demo -- --check
	cd $(JS) && SWITCHBOARD_LOCAL=$(CURDIR)/target/debug/switchboard-local npm run test:integration
	# test:browser without its tsc run: build/ is fresh from npm test
	cd $(JS) && SWITCHBOARD_LOCAL=$(CURDIR)/target/debug/switchboard-local CHROMIUM=$(CHROMIUM) \
	  node --test --test-concurrency=1 build/test/browser/
	cd $(JS) && npm run size
$(JS_STAMP): $(JS)/package-lock.json
	cd $(JS) && npm ci --ignore-scripts --no-audit --no-fund
	touch $@
# Debian's chromium (playwright-core drives it; no browser download, which fails here).
$(CHROMIUM):
	$(if $(filter 0,$(shell id -u)),,sudo) env DEBIAN_FRONTEND=noninteractive sh -c \
	  'apt-get install -y -q chromium || (apt-get update -q && apt-get install -y -q chromium)'

## events: regenerate events/*.json
events:
	python3 scripts/make-events.py

clean:
	rm -rf $(VENV) target .aws-sam
