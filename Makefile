# Tether: the README's two commands are `make demo` and `make test`.
SHELL := /bin/bash
PY := /usr/bin/python3
VENV := .venv
APT_PACKAGES := iproute2 nftables python3-nftables python3-venv runc conmon etcd-server \
	busybox-static curl iperf3 dnsperf dnsmasq-base docker-compose util-linux tini chromium chromium-driver graphviz
NFT_LINK := $(VENV)/debian-nftables

.PHONY: setup demo test unit lint bench clean

setup: $(VENV)/.installed
	@install -m 0755 bin/tether $(VENV)/bin/tether  # the launcher without site, over pip's script

$(VENV)/.installed: pyproject.toml
	@if ! dpkg -s $(APT_PACKAGES) >/dev/null 2>&1; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(APT_PACKAGES) >/dev/null; \
	fi
	@test -x $(VENV)/bin/python || $(PY) -m venv $(VENV)
	@mkdir -p $(NFT_LINK) && ln -sfn /usr/lib/python3/dist-packages/nftables $(NFT_LINK)/nftables
	@echo "$(abspath $(NFT_LINK))" > $$($(VENV)/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/debian-nftables.pth
	@$(VENV)/bin/pip install -q --disable-pip-version-check -e '.[dev]'
	@command -v npm >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends npm >/dev/null
	@bash scripts/vendor-web.sh  # the web page's graph library, from the npm registry
	@touch $@

demo: setup
	$(VENV)/bin/python -m tether.demo

test: setup
	bash scripts/run-tests.sh

unit: setup
	$(VENV)/bin/python -m pytest -q tests/unit

# The layering (pyproject.toml [tool.importlinter]) and no module-level import cycle.
lint: setup
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/mypy src/tether
	PYTHONPATH=src $(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/python scripts/check_imports.py

# netavark + aardvark-dns: without them podman 4.3 falls back to CNI, which has no DNS server
BENCH_PACKAGES := docker.io podman netavark aardvark-dns

bench: setup
	@dpkg -s $(BENCH_PACKAGES) >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(BENCH_PACKAGES) >/dev/null
	@$(VENV)/bin/pip install -q --disable-pip-version-check pyinstrument==5.1.3
	$(VENV)/bin/python -m bench.run

clean:
	rm -rf $(VENV) build *.egg-info
