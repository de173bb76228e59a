# Two commands set everything up on a fresh machine with Python 3.11:
#   make demo   creates .venv, installs keras_gae, runs the main job
#   make test   creates .venv if missing, installs, runs the whole suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
VPY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
# Quiet TensorFlow's C++ start-up logging; Python warnings still show.
export TF_CPP_MIN_LOG_LEVEL ?= 2
export TF_USE_LEGACY_KERAS := 1

.PHONY: demo test bench lint clean

$(VPY):
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --quiet --upgrade pip

$(INSTALLED): $(VPY) setup.py
	$(VPY) -m pip install --quiet -e ".[test]"
	touch $(INSTALLED)

demo: $(INSTALLED)
	$(VPY) examples/gae_demo.py

test: $(INSTALLED)
	$(VPY) -m pytest tests -n 2 --durations=15

bench: $(INSTALLED)
	$(VPY) benchmarks/gae_benchmark.py

lint: $(INSTALLED)
	$(VPY) -m ruff check keras_gae tests examples benchmarks
	$(VPY) -m ruff format --check keras_gae tests examples benchmarks

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
