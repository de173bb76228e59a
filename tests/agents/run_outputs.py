"""Scripts run as a user writes them, and what a run leaves: its
TensorBoard event files, its printed sections."""

import collections
import glob
import os

import tensorflow as tf

# The start of a test's script, as a user writes one: a small PPO model
# and two CartPole environments.
USER_SCRIPT = """
import sys

import keras
from keras_gae import agents, layers, models

def ppo():
    keras.utils.set_random_seed(0)
    actor = keras.Sequential([
        keras.layers.Dense(8, activation="tanh"),
        layers.CategoricalPolicyHead(2),
    ])
    critic = keras.Sequential([
        keras.layers.Dense(8, activation="tanh"),
        keras.layers.Dense(1),
    ])
    model = models.PPOModel(actor, critic)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    return model

def cartpole():
    return agents.make_tf_environment("CartPole-v1", num_envs=2, seed=0)

SETTINGS = dict(rollout_length=8, epochs=1, num_minibatches=1)
"""


def _scalar_events(log_dir):
    """(event, value) of each scalar in the event files of `log_dir`."""
    for path in glob.glob(os.path.join(log_dir, "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                yield event, value


def event_tags(log_dir):
    """Tag -> number of scalar events in the TensorBoard files."""
    return collections.Counter(
        value.tag for _, value in _scalar_events(log_dir)
    )


def event_scalars(log_dir):
    """Tag -> [(step, value)] in file order, read with summary_iterator."""
    scalars = collections.defaultdict(list)
    for event, value in _scalar_events(log_dir):
        number = float(tf.make_ndarray(value.tensor))
        scalars[value.tag].append((event.step, number))
    return dict(scalars)


def output_sections(stdout):
    """A script's output split at its `=== name` marker lines:
    {name: text}."""
    parts, name = {}, None
    for line in stdout.splitlines(keepends=True):
        if line.startswith("=== "):
            name = line[4:].strip()
            parts[name] = ""
        elif name is not None:
            parts[name] += line
    return parts
