# The two commands a newcomer needs: `make local` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Pinned tools, installed into the project-local virtualenv .venv/.
MINISTACK_VERSION := 1.5.33
MOTO_VERSION := 5.2.5
CARGO_LAMBDA_VERSION := 1.9.2
VENV := .venv
# moto pins other boto versions than ministack: it gets a virtualenv of its own.
MOTO_VENV := .venv-moto
# The realism proxy in front of the emulators (tests/realism, docs/realism.md), pinned in
# tests/realism/requirements.txt, in a virtualenv of its own too.
REALISM_VENV := .venv-realism
REALISM_REQUIREMENTS := tests/realism/requirements.txt
# The template scanners (cfn-lint, checkov) of `provision template`, pinned in
# tests/scan/requirements.txt, in a virtualenv of their own.
SCAN_VENV := .venv-scan
SCAN_REQUIREMENTS := tests/scan/requirements.txt
# The proxy's IAM simulator (Node: @cloud-copilot/iam-simulate and iam-data, pinned in
# tests/realism/iam/package-lock.json); npm ci's own lock copy is the stamp.
REALISM_IAM_STAMP := tests/realism/iam/node_modules/.package-lock.json
# `make provision`'s build (the tests run their own debug build).
PROVISION := target/provision

.PHONY: help deps local-deps local-build fetch build provision bench zips web browser-deps test-tools local local-stop test mariadb realism-test realism-soak

# The Lambda functions; each becomes target/lambda/<binary>/bootstrap.zip.
HANDLERS := -p file-upload -p audio-transcribe -p save-text -p send-email -p db-migrate -p vod-convert

help:
	@echo "make local       the whole system on the local emulator; prints the URLs"
	@echo "make local-stop  stop the local emulator"
	@echo "make test        every test (starts what the tests need)"
	@echo "make zips        the Lambda zips, in target/lambda/<function>/bootstrap.zip"
	@echo "make bench       the figures of docs/performance.md, on the local target (after make local)"
	@echo "make realism-test  the tests of the realism proxy in front of the emulators"
	@echo "make realism-soak  the whole stack's lifecycle through the realism layer, once per seed of SOAK_SEEDS"

$(VENV)/.ministack-$(MINISTACK_VERSION):
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check ministack==$(MINISTACK_VERSION)
	touch $@

$(MOTO_VENV)/.moto-$(MOTO_VERSION):
	python3 -m venv $(MOTO_VENV)
	$(MOTO_VENV)/bin/pip install --quiet --disable-pip-version-check "moto[server]==$(MOTO_VERSION)"
	touch $@

# Re-made when the pinned requirements change.
$(REALISM_VENV)/.requirements: $(REALISM_REQUIREMENTS)
	python3 -m venv $(REALISM_VENV)
	$(REALISM_VENV)/bin/pip install --quiet --disable-pip-version-check -r $(REALISM_REQUIREMENTS)
	touch $@

$(SCAN_VENV)/.requirements: $(SCAN_REQUIREMENTS)
	python3 -m venv $(SCAN_VENV)
	$(SCAN_VENV)/bin/pip install --quiet --disable-pip-version-check -r $(SCAN_REQUIREMENTS)
	touch $@

# cargo-lambda (with Zig) builds the Lambda zips for provided.al2023.
$(VENV)/.cargo-lambda-$(CARGO_LAMBDA_VERSION): $(VENV)/.ministack-$(MINISTACK_VERSION)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check cargo-lambda==$(CARGO_LAMBDA_VERSION)
	touch $@

# Re-made when the pinned simulator packages change.
$(REALISM_IAM_STAMP): tests/realism/iam/package.json tests/realism/iam/package-lock.json
	cd tests/realism/iam && npm ci --no-audit --no-fund

deps: $(VENV)/.ministack-$(MINISTACK_VERSION) $(MOTO_VENV)/.moto-$(MOTO_VERSION) $(VENV)/.cargo-lambda-$(CARGO_LAMBDA_VERSION) \
	$(REALISM_VENV)/.requirements $(REALISM_IAM_STAMP) $(SCAN_VENV)/.requirements

# The proxy's own tests start their own ministack, moto and proxies on free ports; so do the
# tests of the CloudFormation types the local target adds to ministack (tests/local).
realism-test: $(VENV)/.ministack-$(MINISTACK_VERSION) $(MOTO_VENV)/.moto-$(MOTO_VERSION) $(REALISM_VENV)/.requirements \
	$(REALISM_IAM_STAMP)
	cd tests/realism && ../../$(REALISM_VENV)/bin/python -m pytest
	$(REALISM_VENV)/bin/python -m pytest tests/local

# The player's hls.js, from npm (version pinned in site/vod/package-lock.json), copied next to
# the page so that no CDN is needed at run time.
web: site/vod/vendor/hls.min.js

site/vod/vendor/hls.min.js: site/vod/package.json site/vod/package-lock.json
	cd site/vod && npm ci --no-audit --no-fund && npm run build

# The browser tests' driver (playwright-core, pinned; it drives Debian's Chromium and
# downloads no browser).
browser-deps: tests/browser/node_modules/.package-lock.json

tests/browser/node_modules/.package-lock.json: tests/browser/package.json tests/browser/package-lock.json
	cd tests/browser && npm ci --no-audit --no-fund

# Debian packages the tests use: Chromium for the browser tests (with a Korean font, fonts-nanum,
# for the pages' screenshots), espeak-ng and ffmpeg to make
# the test audio and video. Debian's security updates replace Chromium's exact version, so
# these follow the release (bookworm) instead of a version that may leave the mirror.
TEST_PACKAGES := chromium espeak-ng ffmpeg fonts-nanum
test-tools:
	@missing=$$(for p in $(TEST_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing $$missing"; \
	  apt-get install -y --no-install-recommends $$missing >/dev/null 2>&1 || \
	  { apt-get update -q >/dev/null && apt-get install -y --no-install-recommends $$missing; }; \
	fi

# The whole workspace with its tests, for `make test`.
build:
	cargo build --workspace --all-targets

# Only the `provision` binary, for `make local` and `make bench` (a newcomer's first run need not
# wait for the tests' build). Built as the zips are, by cargo-lambda in the release profile for
# the same target, so that what it shares with the functions (the runtime, HTTP and TLS, the S3,
# STS, Secrets Manager, SES and Transcribe clients) is compiled once for both: the shared crates
# were half of a debug `provision`'s compile (docs/performance.md). cargo-lambda names every
# binary `bootstrap`; the copy gets its own name back.
provision: $(VENV)/.cargo-lambda-$(CARGO_LAMBDA_VERSION)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" cargo lambda build --release -p provisioner --bin provision
	cp -p target/lambda/provision/bootstrap $(PROVISION)

# Release zips of the handlers, x86_64, for the provided.al2023 runtime. (Built side by side
# with the debug build, in a target directory of its own, a fresh `make local` took 14.5
# minutes, as long as one build after the other: both keep the two cores busy.)
zips: $(VENV)/.cargo-lambda-$(CARGO_LAMBDA_VERSION)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" cargo lambda build --release --output-format zip $(HANDLERS)

# What `make local` needs of `deps`: the emulator and the realism proxy in front of it (not
# moto nor the template scanners, which only the tests use: the scanners alone take about two
# minutes to install).
LOCAL_DEPS := $(VENV)/.ministack-$(MINISTACK_VERSION) $(REALISM_VENV)/.requirements $(REALISM_IAM_STAMP)
local-deps: $(LOCAL_DEPS) $(VENV)/.cargo-lambda-$(CARGO_LAMBDA_VERSION)

# `provision`, then the zips: one cargo at a time in a target directory (the second would wait
# for the first's lock), and both are bound by the two cores anyway. cargo-lambda is installed
# before, by this make, so that the install beside it (local-deps) is not made twice at once.
local-build: $(VENV)/.cargo-lambda-$(CARGO_LAMBDA_VERSION)
	$(MAKE) --no-print-directory provision
	$(MAKE) --no-print-directory zips

# The crates' download, for the compile that follows cargo-lambda's install.
fetch:
	cargo fetch --locked

# The installs (mostly downloads) run beside the compile, which keeps the two cores busy; the
# crates are downloaded while cargo-lambda is installed.
local: mariadb
	$(MAKE) --no-print-directory -j3 local-build web local-deps fetch
	REALISM_MODE=validate scripts/local-aws.sh start ministack
	$(PROVISION) --local up

local-stop:
	scripts/local-aws.sh stop ministack
	scripts/local-aws.sh stop moto
	$(BEHAVIOUR_MINISTACK) scripts/local-aws.sh stop ministack

# The machine's MariaDB (the local target's database); started if it is installed but stopped.
mariadb:
	@mysqladmin --host=127.0.0.1 --user=root ping >/dev/null 2>&1 || { \
	  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd; \
	  for i in $$(seq 1 30); do mysqladmin --host=127.0.0.1 --user=root ping >/dev/null 2>&1 && break; sleep 1; done; }

# The realism layer as the tests meet it (docs/realism.md): validation, AWS's durations scaled
# down, 5% faults, and a seed of its own each run unless REALISM_SEED is given (printed, so a
# failure can be replayed). Slow AWS waits (RDS, CloudFront, ENI release) at 1/50; the short
# ones nearer their real length, so that they still overlap what comes next.
REALISM_TEST_SCALES := iam_propagation=0.5,lambda_pending=1,lambda_pending_vpc=0.1,lambda_update=1,lambda_update_vpc=0.1,s3_read_after_create=1,ec2_read_after_create=1
REALISM_TEST_SEED := $(or $(REALISM_SEED),$(shell python3 -c 'import random; print(random.randrange(1, 2**31))'))
REALISM_TEST := REALISM_MODE=test REALISM_FAULT_RATE=0.05 REALISM_TIME_SCALE=0.02 \
	REALISM_SCALES=$(REALISM_TEST_SCALES) REALISM_SEED=$(REALISM_TEST_SEED)

# The tests that change the realism layer's settings for every caller (system-tests::aws_behaviour)
# get a ministack of their own, so that they run beside the others instead of alone.
BEHAVIOUR_MINISTACK := LOCAL_AWS_INSTANCE=ministack-behaviour MINISTACK_PORT=4576 MINISTACK_UPSTREAM_PORT=4577

# Integration tests talk to the emulators (through the realism layer) and MariaDB; the zip
# tests run the built zips. The test binaries run all at once (scripts/run-tests.py: they
# mostly wait on the emulators), the realism layer's own pytest beside them at a lower CPU
# priority (it starts emulators of its own, and is not the longest job).
# The installs run beside the workspace's compile, as for `make local`.
test: mariadb
	$(MAKE) --no-print-directory -j3 build deps web browser-deps test-tools
	$(MAKE) --no-print-directory zips
	$(REALISM_TEST) scripts/local-aws.sh start ministack
	$(REALISM_TEST) scripts/local-aws.sh start moto
	$(REALISM_TEST) $(BEHAVIOUR_MINISTACK) scripts/local-aws.sh start ministack
	@echo "realism layer: test mode, seed $(REALISM_TEST_SEED) (replay with REALISM_SEED=$(REALISM_TEST_SEED) make test)"
	STT_INTEGRATION=1 STT_REQUIRE_ZIPS=1 python3 scripts/run-tests.py \
	  --env-for system-tests::aws_behaviour=STT_MINISTACK_ENDPOINT=http://127.0.0.1:4576 \
	  --extra "realism-pytest=nice -n 10 $(MAKE) --no-print-directory realism-test"

# The console build's Node.js function init, for the bench's comparison of cold starts (the AWS
# SDK for JavaScript, pinned in tests/bench/console-runtimes/package-lock.json).
CONSOLE_RUNTIMES := tests/bench/console-runtimes/node_modules/.package-lock.json
$(CONSOLE_RUNTIMES): tests/bench/console-runtimes/package.json tests/bench/console-runtimes/package-lock.json
	cd tests/bench/console-runtimes && npm ci --no-audit --no-fund

# The figures users choosing the tool care about (docs/performance.md), measured on the local
# target with a stack of its own; not part of `make test`. Runs in the realism layer's virtualenv
# (botocore reads the functions' environment for the cold starts).
bench: deps provision zips web mariadb test-tools $(CONSOLE_RUNTIMES)
	REALISM_MODE=validate scripts/local-aws.sh start ministack
	$(REALISM_VENV)/bin/python scripts/bench.py $(BENCH_ARGS)

# The whole stack's lifecycle (up, up again, drift, down) through the realism layer in test
# mode, once per seed: a timing or fault the suite met once is met again with another seed.
# Not part of `make test` (about 1.5 minutes per seed).
SOAK_SEEDS ?= 101 202 303 404 505
realism-soak: deps build zips web mariadb
	@for seed in $(SOAK_SEEDS); do \
	  echo "== realism seed $$seed"; \
	  REALISM_MODE=test REALISM_FAULT_RATE=0.05 REALISM_TIME_SCALE=0.02 REALISM_SCALES=$(REALISM_TEST_SCALES) \
	    REALISM_SEED=$$seed scripts/local-aws.sh start ministack >/dev/null || exit 1; \
	  STT_INTEGRATION=1 cargo test -q -p system-tests --test lifecycle || { echo "failed with seed $$seed"; exit 1; }; \
	done; echo "lifecycle passed with seeds $(SOAK_SEEDS)"
