# lsrs: `make setup` installs everything into .venv; `make test` runs the test suite (installing first).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
FASHION_DIR := /usr/share/datasets/fashion-mnist

.PHONY: setup data test bench mini-models mini-lsrs repro clean-venv

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.14.1 torchvision==0.29.1
	$(PIP) install -q -e '.[test]'
	touch $@

setup: $(VENV)/.installed data

# The mini profile's data: the Debian package dataset-fashion-mnist (installed when we are root).
data:
	@if [ -d $(FASHION_DIR) ]; then echo "Fashion-MNIST found in $(FASHION_DIR)"; \
	elif [ "$$(id -u)" = 0 ]; then (apt-get update -qq || true) && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist; \
	else echo "Fashion-MNIST missing: run 'sudo apt-get install dataset-fashion-mnist' (tests that need it are skipped)"; fi

test: setup
	$(PY) -m pytest -q

# Sampler speed and LSRS overhead, each next to the peer code (work trees in /work/official_var and
# /work/official_lsrs, see benchmarks/*.py --help); the peers import einops and huggingface_hub.
BENCH_ARGS ?=
bench: setup
	@$(PY) -c "import einops, huggingface_hub" 2>/dev/null || $(PIP) install -q einops huggingface_hub
	@s=0; $(PY) benchmarks/bench_sampler.py $(BENCH_ARGS) || s=1; \
	$(PY) benchmarks/bench_lsrs.py $(BENCH_ARGS) || s=1; exit $$s

# The pipeline's steps by hand, in runs/cli (outside DVC's outputs): the mini tokenizer and VAR and a
# sample grid (about 25 minutes on 2 cores), then LSRS on them (about 5 minutes). `lsrs --help` lists more.
mini-models: setup
	$(VENV)/bin/lsrs train-tokenizer
	$(VENV)/bin/lsrs train-var --name d4
	$(VENV)/bin/lsrs sample --name d4 --out runs/cli/samples.png

mini-lsrs: setup
	$(VENV)/bin/lsrs extract
	$(VENV)/bin/lsrs sample-tokens --name d4
	$(VENV)/bin/lsrs train-scorer --name d4-pairwise
	$(VENV)/bin/lsrs train-scorer --name d4-pointwise
	$(VENV)/bin/lsrs sample --scorer d4-pairwise --out runs/cli/samples_lsrs.png
	$(VENV)/bin/lsrs random-scales --out runs/cli/random_scales.png

# The whole paper on the profile in params.yaml (mini: about 40 minutes on 2 cores), as a DVC pipeline.
repro: setup
	@git rev-parse --git-dir >/dev/null 2>&1 || { echo "make repro needs a git checkout (DVC experiments live in git)"; exit 1; }
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" DVC_NO_ANALYTICS=1 $(VENV)/bin/dvc repro
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/dvc metrics show

clean-venv:
	rm -rf $(VENV)
