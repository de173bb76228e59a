"""Helpers of the training-step tests: one pass over one rollout batch."""

import numpy as np

from keras_gae.models import rollout_dataset


def fit(model, batch, **kwargs):
    """One epoch of `model.fit` over `batch` as one unshuffled minibatch."""
    return model.fit(
        rollout_dataset(batch, num_minibatches=1, shuffle=False),
        epochs=1,
        verbose=0,
        shuffle=False,
        **kwargs,
    ).history


def state_of(model):
    """The trainable weights and every optimizer variable, as arrays."""
    return [np.array(v) for v in model.trainable_variables] + [
        np.array(v) for v in model.optimizer.variables
    ]
