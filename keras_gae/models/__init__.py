"""Keras training models whose `train_step` runs GAE and a policy loss."""

from keras_gae.models.a2c import A2CModel
from keras_gae.models.actor_critic import ActorCriticModel
from keras_gae.models.datasets import MINIBATCH_MODES
from keras_gae.models.datasets import minibatch_dataset
from keras_gae.models.datasets import rollout_dataset
from keras_gae.models.datasets import step_dataset
from keras_gae.models.fit_hooks import NonFiniteLossError
from keras_gae.models.inference import ActionOutputs
from keras_gae.models.ppo import PPOModel
from keras_gae.models.recurrent import RecurrentActorCritic
from keras_gae.models.recurrent import SequenceInputs

__all__ = [
    "A2CModel",
    "ActionOutputs",
    "ActorCriticModel",
    "NonFiniteLossError",
    "PPOModel",
    "RecurrentActorCritic",
    "SequenceInputs",
    "MINIBATCH_MODES",
    "minibatch_dataset",
    "rollout_dataset",
    "step_dataset",
]
