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
PROVISION := target/debug/provision

.PHONY: help deps build zips local local-stop test mariadb

# The Lambda functions; each becomes target/lambda/<binary>/bootstrap.zip.
HANDLERS := -p file-upload -p audio-transcribe -p save-text -p send-email -p db-migrate

help:
	@echo "make local       the whole system on the local emulator; prints the URLs"
	@echo "make local-stop  stop the local emulator"
	@echo "make test        every test (starts what the tests need)"
	@echo "make zips        the Lambda zips, in target/lambda/<function>/bootstrap.zip"

$(VENV)/.ministack-$(MINISTACK_VERSION):
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check ministack==$(MINISTACK_VERSION)
	touch $@

$(MOTO_VENV)/.moto-$(MOTO_VERSION):
	python3 -m venv $(MOTO_VENV)
	$(MOTO_VENV)/bin/pip install --quiet --disable-pip-version-check "moto[server]==$(MOTO_VERSION)"
	touch $@

# cargo-lambda (with Zig) builds the Lambda zips for provided.al2023.
$(VENV)/.cargo-lambda-$(CARGO_LAMBDA_VERSION): $(VENV)/.ministack-$(MINISTACK_VERSION)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check cargo-lambda==$(CARGO_LAMBDA_VERSION)
	touch $@

deps: $(VENV)/.ministack-$(MINISTACK_VERSION) $(MOTO_VENV)/.moto-$(MOTO_VERSION) $(VENV)/.cargo-lambda-$(CARGO_LAMBDA_VERSION)

# One build of the whole workspace, shared by `local` and the tests.
build:
	cargo build --workspace --all-targets

# Release zips of the handlers, x86_64, for the provided.al2023 runtime.
zips: deps
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" cargo lambda build --release --output-format zip $(HANDLERS)

local: deps build zips mariadb
	scripts/local-aws.sh start ministack
	$(PROVISION) --local up

local-stop:
	scripts/local-aws.sh stop ministack
	scripts/local-aws.sh stop moto

# The machine's MariaDB (the local target's database); started if it is installed but stopped.
mariadb:
	@mysqladmin --host=127.0.0.1 --user=root ping >/dev/null 2>&1 || { \
	  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd; \
	  for i in $$(seq 1 30); do mysqladmin --host=127.0.0.1 --user=root ping >/dev/null 2>&1 && break; sleep 1; done; }

# Integration tests talk to the emulators and MariaDB; the zip tests run the built zips.
test: deps build zips mariadb
	scripts/local-aws.sh start ministack
	scripts/local-aws.sh start moto
	STT_INTEGRATION=1 STT_REQUIRE_ZIPS=1 cargo test --workspace
