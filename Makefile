# mini-container: the one entry point. `make help` lists the targets.
SHELL        := /bin/bash
.DEFAULT_GOAL := help
# Debian's python builds a faster frozen CLI than a pyenv one and has no shim cost.
PYTHON       ?= /usr/bin/python3
VENV         := .venv
PY           := $(VENV)/bin/python
PIP          := $(VENV)/bin/pip
PYTEST       := $(VENV)/bin/pytest
export SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || date +%s)

# Debian packages the project needs on the host, by purpose.
APT_RUNTIME  := busybox-static iproute2 libseccomp2 util-linux procps containernetworking-plugins iptables
APT_DEV      := python3-venv python3-dev bats chromium chromium-driver tmux
APT_PACKAGE  := rpm fakeroot lintian man-db binutils cpio systemd zsh
APT_VM       := qemu-system-x86 debootstrap e2fsprogs
APT_BENCH    := runc crun podman hyperfine bubblewrap strace
# mcrt's clients and reference: runc beside it (linux tier), podman/conmon and containerd
# with its runc v2 shim driving it (integration and bats tiers).
APT_CLIENTS  := runc crun podman conmon containerd

.PHONY: help dev demo test check test-linux test-integration test-fuzz test-bats test-browser test-vm \
        dist deb rpm man completions bench clean distclean apt-runtime apt-dev apt-package apt-vm apt-bench apt-clients mcrt-conformance

help:
	@echo "make dev          .venv with mcctl and mcd (installs missing system packages)"
	@echo "make demo         set up and run a real container (needs root)"
	@echo "make test         everything: unit, linux, integration, fuzz, bats, browser, VM lane (root)"
	@echo "make check        the fast host tier: unit tests, generated files up to date"
	@echo "make dist         frozen binaries in dist/"
	@echo "make deb | rpm    distro packages in dist/"
	@echo "make man | completions   regenerate man/ and completions/ from the parser"
	@echo "make bench        benchmarks side by side with runc, crun, podman"
	@echo "make mcrt-conformance   docs/mcrt-conformance.md from the last mcrt test run"

# --- system packages: installed only when missing --------------------------------------
define apt_ensure
	@missing=""; for p in $(1); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" != 0 ]; then echo "make: missing system packages:$$missing (run as root, or: sudo apt-get install$$missing)"; exit 1; fi; \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
endef

apt-runtime: ; $(call apt_ensure,$(APT_RUNTIME))
apt-dev:     ; $(call apt_ensure,$(APT_RUNTIME) $(APT_DEV))
apt-package: ; $(call apt_ensure,$(APT_PACKAGE))
apt-vm:      ; $(call apt_ensure,$(APT_VM))
apt-bench:   ; $(call apt_ensure,$(APT_BENCH))
apt-clients: ; $(call apt_ensure,$(APT_CLIENTS))

# --- the development environment ---------------------------------------------------------
$(VENV)/.installed: pyproject.toml
	$(MAKE) --no-print-directory apt-dev
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[test,build]' --config-settings editable_mode=compat
	touch $@

dev: $(VENV)/.installed

# --- the newcomer path ---------------------------------------------------------------------
demo: dev
	bash scripts/demo.sh

# --- tests ---------------------------------------------------------------------------------
check: dev
	bash scripts/pytest-tier.sh tests/python/unit

test-linux: dev
	$(MAKE) --no-print-directory apt-clients
	bash scripts/pytest-tier.sh tests/python/linux

test-integration: dev
	$(MAKE) --no-print-directory apt-clients
	bash scripts/pytest-tier.sh tests/python/integration

# The API fuzzed from its own OpenAPI schema (schemathesis) against a private daemon in a
# network namespace of its own; bounded (MC_FUZZ_EXAMPLES per operation, default 40).
test-fuzz: dev
	bash scripts/pytest-tier.sh tests/python/fuzz

test-bats: dev dist
	$(MAKE) --no-print-directory apt-clients
	bash tests/bats/run.sh

test-browser: dev
	bash scripts/pytest-tier.sh tests/python/browser

test-vm: dev deb
	$(MAKE) --no-print-directory apt-vm
	bash tests/vm/build-older-deb.sh
	bash tests/vm/run.sh

# Everything, as CI runs it (root). Stops at the first failing tier. dist comes before the
# integration tier, which runs the frozen binaries too; under `make test` their absence fails.
test: export MC_REQUIRE_DIST = 1
test: check test-linux dist test-integration test-fuzz test-bats test-browser test-vm
	@echo "make test: all tiers passed"

# --- build artefacts ---------------------------------------------------------------------------
dist: dev
	bash packaging/build-dist.sh

man: dev
	bash packaging/gen-man.sh

completions: dev
	bash packaging/gen-completions.sh

deb: dist
	$(MAKE) --no-print-directory apt-package
	bash packaging/deb/build.sh

rpm: dist
	$(MAKE) --no-print-directory apt-package
	bash packaging/rpm/build.sh

bench: dev dist
	$(MAKE) --no-print-directory apt-bench
	bash bench/run.sh

# docs/mcrt-conformance.md from what the last mcrt test run proved (test-artifacts/).
mcrt-conformance: dev
	.venv/bin/python scripts/gen-mcrt-conformance.py

clean:
	rm -rf build dist *.egg-info .pytest_cache test-artifacts
distclean: clean
	rm -rf $(VENV)
