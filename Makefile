# Two commands: `make book` and `make test`. Each sets up .venv from the repository's files.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The rendered book shows no progress bars; readers running notebooks interactively see them.
export TQDM_DISABLE ?= 1
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: setup book test test-unit test-notebooks build lab bench strip clean

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

build: setup
	$(BIN)/jupyter-book build . -W -n --keep-going

book: build
	@echo "The book is at $(abspath _build/html/index.html)"

test-unit: setup
	$(BIN)/python -m pytest tests

test-notebooks: setup
	$(BIN)/python -m pytest --nbval-lax chapters

test: test-unit test-notebooks build

lab: setup
	TQDM_DISABLE=0 $(BIN)/jupyter lab chapters

bench: setup
	$(BIN)/python benchmarks/ensemble_speed.py

strip: setup
	$(BIN)/jupyter nbconvert --clear-output --inplace chapters/*.ipynb

clean:
	rm -rf _build
