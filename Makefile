# The two commands a newcomer needs: `make local` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Pinned tools, installed into the project-local virtualenv .venv/.
MINISTACK_VERSION := 1.5.33
MOTO_VERSION := 5.2.5
VENV := .venv
# moto pins other boto versions than ministack: it gets a virtualenv of its own.
MOTO_VENV := .venv-moto
PROVISION := target/debug/provision

.PHONY: help deps build local local-stop test mariadb

help:
	@echo "make local       the whole system on the local emulator; prints the URLs"
	@echo "make local-stop  stop the local emulator"
	@echo "make test        every test (starts what the tests need)"

$(VENV)/.ministack-$(MINISTACK_VERSION):
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check ministack==$(MINISTACK_VERSION)
	touch $@

$(MOTO_VENV)/.moto-$(MOTO_VERSION):
	python3 -m venv $(MOTO_VENV)
	$(MOTO_VENV)/bin/pip install --quiet --disable-pip-version-check "moto[server]==$(MOTO_VERSION)"
	touch $@

deps: $(VENV)/.ministack-$(MINISTACK_VERSION) $(MOTO_VENV)/.moto-$(MOTO_VERSION)

# One build of the whole workspace, shared by `local` and the tests.
build:
	cargo build --workspace --all-targets

local: deps build
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

test: deps build mariadb
	scripts/local-aws.sh start ministack
	scripts/local-aws.sh start moto
	cargo test --workspace
