# Two set-up commands: `make demo` (train + evaluate + report on the real chest X-rays) and `make test`.
# Both create .venv themselves from requirements.lock (CPU build of torch; no CUDA download).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.medfit-installed

.PHONY: install chromium postgresql demo test deps-audit bench clean

install: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, pinned to the CPU build, so that nothing later pulls a CUDA build
	$(BIN)/pip install -q -c requirements.lock torch==2.13.0
	$(BIN)/pip install -q -c requirements.lock -e '.[test,postgres]'
	# Make `import torchvision` safe from any entry point (see medfit/_torchvision_shim.py)
	# (the path is asked from the venv at run time: make expands a whole recipe before its first line runs)
	echo 'import medfit' > "$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/medfit-torchvision-shim.pth"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/medfit demo

# The report tests open the HTML reports in headless Chromium (Debian's package; apt needs root or sudo).
chromium:
	@command -v chromium >/dev/null || { \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  echo "installing Debian's chromium for the report tests"; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

# The tuning test starts a throwaway PostgreSQL server from Debian's binaries (/usr/lib/postgresql/*/bin).
postgresql:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || { \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  echo "installing Debian's postgresql for the tuning test"; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq postgresql >/dev/null; }

# The layer contract (pyproject.toml [tool.importlinter]) first: a back-arrow between packages fails fast. Then the
# known vulnerabilities of requirements.lock (pip-audit): printed, never failing; an unreachable service is one line.
test: $(STAMP) chromium postgresql
	$(BIN)/lint-imports
	BIN=$(BIN) bash .ci/deps-audit
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(BIN)/python -m pytest -q tests

deps-audit: $(STAMP)
	BIN=$(BIN) bash .ci/deps-audit

bench: $(STAMP)
	for b in bench/*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) runs .pytest_cache
