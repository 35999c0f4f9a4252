# Two commands: `make book` and `make test`. Each sets up .venv from the repository's files.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The rendered book shows no progress bars; readers running notebooks interactively see them.
export TQDM_DISABLE ?= 1
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: setup book test test-unit test-notebooks build lab bench strip clean browser-deps test-rendered

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

# jupyter-cache re-executes a notebook only when its own code changes; a change to the
# package or the pinned versions must re-execute every notebook, so it empties the cache.
CACHE_KEY := _build/.cache-key
$(CACHE_KEY): $(wildcard bagdrop/*.py) requirements.txt pyproject.toml
	rm -rf _build/.jupyter_cache
	mkdir -p _build && touch $@

build: setup $(CACHE_KEY)
	$(BIN)/jupyter-book build . -W -n --keep-going

book: build
	@echo "The book is at $(abspath _build/html/index.html)"

test-unit: setup
	$(BIN)/python -m pytest tests

test-notebooks: setup
	$(BIN)/python -m pytest --nbval-lax chapters

test: browser-deps test-unit test-notebooks build test-rendered

# Headless Chromium for tests/test_rendered.py comes from Debian's packages (Playwright
# drives it through executable_path; it never downloads a browser). Installed only when
# missing; needs root (CI runs as root), else sudo. CHROMIUM=/path/to/chromium skips apt.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser-deps:
	@if [ -n "$${CHROMIUM:-}" ]; then "$$CHROMIUM" --version; \
	elif command -v chromium >/dev/null 2>&1; then chromium --version; else \
	  echo "Installing Debian's chromium and fonts for the browser test"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends \
	    chromium fonts-dejavu-core fonts-liberation >/dev/null && chromium --version; fi

# Opens every page of _build/html in headless Chromium (after `build`); fails, never
# skips, when the book or the browser is missing. Screenshots go to _build/screenshots/.
test-rendered: setup
	BAGDROP_RENDERED_TEST=1 $(BIN)/python -m pytest tests/test_rendered.py tests/test_launch_links.py

# JupyterLab on the chapters; its python3 kernel is this .venv's ipykernel. Extra options
# go in LAB_ARGS (e.g. `make lab LAB_ARGS=--no-browser`); as root it adds --allow-root.
lab: setup
	TQDM_DISABLE=0 $(BIN)/jupyter lab chapters $(if $(SUDO),,--allow-root) $(LAB_ARGS)

bench: setup
	$(BIN)/python benchmarks/ensemble_speed.py --json

strip: setup
	$(BIN)/jupyter nbconvert --clear-output --inplace chapters/*.ipynb

clean:
	rm -rf _build
