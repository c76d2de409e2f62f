# bt-analyzer: everything a fresh machine needs is reachable from these targets.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PYX    := $(shell find analyzer -name '*.pyx' -o -name '*.pxd')
SYSTEM_PACKAGES := tcpdump iproute2 iptables ethtool tshark poppler-utils time \
                   libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fontconfig fonts-dejavu-core chromium \
                   transmission-daemon qbittorrent-nox deluged aria2 rtorrent
# Packages whose postinst would start (and enable) a system-wide BitTorrent daemon,
# listening on all addresses with DHT on: installed with services kept down.
CLIENT_SERVICES := transmission-daemon deluged

.PHONY: install build system-deps demo test bench fuzz clean

install: $(VENV)/.installed build

# The venv and the pinned dependencies (re-run only when the project file changes).
$(VENV)/.installed: pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q setuptools==84.2.1 wheel==0.48.0 Cython==3.3.1 numpy==2.4.6
	$(PY) -m pip install -q --no-build-isolation -e '.[test]' --config-settings editable_mode=compat
	touch $@

# Compiled kernels, rebuilt in place whenever a .pyx/.pxd changes; bytecode compiled ahead, so
# that a run starts without compiling the package (also where PYTHONDONTWRITEBYTECODE is set),
# the report's templates too (analyzer/report/compiled.py).
PYSRC := $(shell find analyzer -name '*.py' -o -name '*.j2' -o -name '*.css')
build: $(VENV)/.built $(VENV)/.bytecode
$(VENV)/.built: $(VENV)/.installed $(PYX) setup.py
	$(PY) setup.py -q build_ext --inplace
	touch $@
$(VENV)/.bytecode: $(VENV)/.installed $(PYSRC)
	$(PY) -m compileall -q -j 0 analyzer
	$(PY) -m analyzer.report.compiled
	touch $@

# policy-rc.d (exit 101) forbids invoke-rc.d to start services during the install (the
# real-traffic tests start the clients themselves, inside network namespaces); it is put
# in place only if the machine has none and removed again whatever happens.  The client
# services are then disabled so that a boot does not start them either.
system-deps:
	@missing=""; for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections; \
	  guard=""; \
	  if [ ! -e /usr/sbin/policy-rc.d ]; then \
	    guard=/usr/sbin/policy-rc.d; printf '#!/bin/sh\nexit 101\n' > $$guard; chmod 755 $$guard; \
	    trap 'rm -f $$guard' EXIT; \
	  fi; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  (apt-get install -y -q $$missing || (apt-get update -q && apt-get install -y -q $$missing)) >/dev/null \
	    || { echo "system-deps: apt-get failed for:$$missing" >&2; exit 1; }; \
	  for s in $(CLIENT_SERVICES); do case " $$missing " in *" $$s "*) \
	    deb-systemd-helper disable $$s.service >/dev/null 2>&1; update-rc.d $$s disable >/dev/null 2>&1;; \
	  esac; done; \
	fi; true

demo: install
	$(VENV)/bin/bt-analyzer analyze captures/sample-swarm.pcap --local 127.0.0.3 --torrent captures/sample-swarm.torrent --out out/demo --report

test: install system-deps
	$(PY) -m pytest -q -n 2 --dist loadgroup

bench: install system-deps
	$(PY) bench/bench.py --out .bench $(if $(TRACEBT),--tracebt $(TRACEBT))

# Coverage-guided fuzzing (atheris) of every parser for FUZZ_SECONDS each, FUZZ_JOBS at a time;
# prints executions and crashes per target (new inputs and crashes go to .fuzz/).
FUZZ_SECONDS ?= 180
FUZZ_JOBS ?= 2
fuzz: install
	cd tests && ../$(PY) -m fuzz.run --seconds $(FUZZ_SECONDS) --jobs $(FUZZ_JOBS)

clean:
	rm -rf $(VENV) build out .bench .fuzz
	find analyzer -name '*.so' -delete -o -name '*.c' -delete
