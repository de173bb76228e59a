"""tf-agents glue: environments, policy, trajectories, collect-and-fit loop."""

from keras_gae.agents.environments import EPISODE_HISTORY
from keras_gae.agents.environments import GymnasiumEnvironment
from keras_gae.agents.environments import make_tf_environment
from keras_gae.agents.policy import KerasPolicy
from keras_gae.agents.training import OnPolicyTrainer
from keras_gae.agents.training import train
from keras_gae.agents.trajectories import trajectory_to_rollout_batch

__all__ = [
    "EPISODE_HISTORY",
    "GymnasiumEnvironment",
    "KerasPolicy",
    "OnPolicyTrainer",
    "make_tf_environment",
    "train",
    "trajectory_to_rollout_batch",
]
