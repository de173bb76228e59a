"""Installs keras_gae, a TensorFlow/Keras toolkit for advantage-based RL."""

import pathlib

import setuptools

_HERE = pathlib.Path(__file__).parent
_LM = ["keras-hub>=0.32,<0.33", "tensorflow-text>=2.21,<2.22"]
# Ray Core only: ray[default] and ray[train] need a newer typing-extensions
# than tf-agents 0.19 allows.
_RAY = ["ray>=2.60,<2.61"]
# The Atari games (ROMs included) and gymnasium's AtariPreprocessing;
# OpenCV 4.12+ needs NumPy 2.
_ATARI = ["ale-py>=0.12,<0.13", "opencv-python-headless>=4.9,<4.12"]

setuptools.setup(
    name="keras_gae",
    version="0.2.0",
    description=(
        "Generalized Advantage Estimation, policy losses and PPO/A2C "
        "training models for TensorFlow/Keras and tf-agents."
    ),
    long_description=(_HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    packages=setuptools.find_packages(include=["keras_gae", "keras_gae.*"]),
    # The native GAE op is compiled from this source on first use.
    package_data={"keras_gae.ops.native": ["gae_op.cc"]},
    python_requires=">=3.10,<3.13",
    install_requires=[
        # Tested together. keras_gae is built on Keras 3; tf-agents 0.19 and
        # tensorflow-probability 0.23 need Keras 2 inside, from tf-keras.
        "tensorflow>=2.21,<2.22",
        "keras>=3.15,<4",
        "tf-keras>=2.21,<2.22",
        "tf-agents>=0.19,<0.20",
        # The TensorBoard callback writes summaries through this package.
        "tensorboard>=2.21,<2.22",
        "gymnasium>=1.0,<2",
        "numpy>=1.26,<2",
        "absl-py>=2.0",
        # The learning-curve plot of examples/train_ppo.py (3.11 tested).
        "matplotlib>=3.8,<4",
    ],
    extras_require={
        # Real causal LMs for keras_gae.lm (GPT-2, Gemma, Llama, ...).
        "lm": _LM,
        # Rollout workers on Ray Core (keras_gae.distributed).
        "ray": _RAY,
        # keras_gae.agents.make_atari_env.
        "atari": _ATARI,
        "test": _LM
        + _RAY
        + _ATARI
        + [
            # pytest 9.2 ignores the node-id suffix by which xdist 3.8's
            # `--dist loadgroup` groups tests (pytest-dev/pytest-xdist#1386):
            # the Ray tests would spread over workers, a cluster in each.
            "pytest>=8,<9.2",
            "pytest-xdist>=3.5",
            "hypothesis>=6.100",
            "ruff>=0.6",
        ],
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
