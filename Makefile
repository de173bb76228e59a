# Two commands set everything up on a fresh machine with Python 3.11:
#   make demo   creates .venv, installs keras_gae, runs the main job
#   make test   creates .venv if missing, installs, runs the whole suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
VPY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
# Quiet TensorFlow's C++ logging (errors and below); Python warnings and
# exceptions still show.
export TF_CPP_MIN_LOG_LEVEL ?= 3

.PHONY: demo test bench lint clean

$(VPY):
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --quiet --upgrade pip

$(INSTALLED): $(VPY) setup.py
	$(VPY) -m pip install --quiet -e ".[test]"
	touch $(INSTALLED)

# PPO on CartPole-v1 with the preset agents.PPO uses, until a mean return
# of 475 (a rerun resumes from runs/demo and trains no further once the
# target was met), then 20 greedy episodes of the exported SavedModel.
# train_ppo.py names what it wrote under runs/demo; the evaluation's
# summary is the last line.
demo: $(INSTALLED)
	$(VPY) examples/train_ppo.py --env=CartPole-v1 --target_return=475 \
		--root_dir=runs/demo
	$(VPY) examples/evaluate_policy.py --env=CartPole-v1 \
		--policy_dir=runs/demo/policy --num_episodes=20 --min_mean_return=475

test: $(INSTALLED)
	$(VPY) -m pytest tests -n 2 --dist loadgroup --durations=15

bench: $(INSTALLED)
	$(VPY) benchmarks/gae_benchmark.py \
		--shapes=1x1,32x64,128x8,512x64,128x2048,2048x4096 --repeats=11 \
		--format=markdown

lint: $(INSTALLED)
	$(VPY) -m ruff check keras_gae tests examples benchmarks
	$(VPY) -m ruff format --check keras_gae tests examples benchmarks

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
