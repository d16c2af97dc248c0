# `make train` and `make test` work on a fresh clone: each creates .venv and installs what it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The CPU build of PyTorch; installed first so that no CUDA packages are pulled in.
TORCH_SPEC ?= torch==2.13.0
ENV ?= CartPole-v1
PYTEST_ARGS ?= -m "not slow"

.PHONY: install install-dev install-render train test test-all lint mutation clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/activate pyproject.toml
	$(BIN)/pip install --quiet $(TORCH_SPEC)
	$(BIN)/pip install --quiet -e ".[mujoco]"
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/pip install --quiet -e ".[mujoco,dev,ray,export,record,tune,wandb,atari,minigrid,envpool]"
	touch $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

# Headless OpenGL for `trpo record` on MuJoCo environments: Mesa's EGL (software rendering, no display or
# GPU needed). Installed with apt-get when missing and apt-get can run as root; otherwise says what to install.
RENDER_DEBS := libegl1 libegl-mesa0 libgl1-mesa-dri
install-render:
	@if /sbin/ldconfig -p 2>/dev/null | grep -q libEGL_mesa.so; then \
		echo "install-render: Mesa EGL is installed"; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(RENDER_DEBS); \
	else \
		echo "install-render: install $(RENDER_DEBS) (Debian/Ubuntu) to record MuJoCo videos; the MuJoCo record test is skipped without them"; \
	fi

train: install
	$(BIN)/trpo train $(ENV)

test: install-dev install-render
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-all: install-dev install-render
	$(BIN)/python -m pytest

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

# Not part of CI (it takes long): the planted bugs of benchmarks/planted_bugs.py, each of which a test must
# catch, then mutmut's generated mutants of the math, advantages, normalisation and evaluation
# ([tool.mutmut] in pyproject.toml), with the surviving ones listed at the end. PYTHONPATH=src (relative
# to mutmut's mutants/ copy) puts the mutated package before the editable install's path.
mutation: install-dev
	$(BIN)/pip install --quiet "mutmut==3.8.1"
	$(BIN)/python benchmarks/planted_bugs.py
	PYTHONPATH=src $(BIN)/mutmut run --max-children 2 || true
	$(BIN)/mutmut results

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache mutants
