# bt-analyzer: everything a fresh machine needs is reachable from these targets.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PYX    := $(shell find analyzer -name '*.pyx' -o -name '*.pxd')
SYSTEM_PACKAGES := tcpdump iproute2 iptables ethtool tshark poppler-utils \
                   libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fontconfig fonts-dejavu-core chromium

.PHONY: install build system-deps demo test bench clean

install: $(VENV)/.installed build

# The venv and the pinned dependencies (re-run only when the project file changes).
$(VENV)/.installed: pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q setuptools==84.2.1 wheel==0.48.0 Cython==3.3.1 numpy==2.4.6
	$(PY) -m pip install -q --no-build-isolation -e '.[test]'
	touch $@

# Compiled kernels, rebuilt in place whenever a .pyx/.pxd changes.
build: $(VENV)/.built
$(VENV)/.built: $(VENV)/.installed $(PYX) setup.py
	$(PY) setup.py -q build_ext --inplace
	touch $@

system-deps:
	@missing=""; for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections; \
	  (apt-get install -y -q $$missing || (apt-get update -q && apt-get install -y -q $$missing)) >/dev/null \
	    || { echo "system-deps: apt-get failed for:$$missing" >&2; exit 1; }; \
	fi

demo: install
	$(VENV)/bin/bt-analyzer analyze captures/sample-swarm.pcap --local 127.0.0.3 --torrent captures/sample-swarm.torrent --out out/demo --report

test: install system-deps
	$(PY) -m pytest -q -n 2 --dist loadgroup

bench: install system-deps
	$(PY) bench/bench.py --out .bench

clean:
	rm -rf $(VENV) build out .bench
	find analyzer -name '*.so' -delete -o -name '*.c' -delete
