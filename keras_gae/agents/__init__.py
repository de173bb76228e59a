"""tf-agents glue: environments, policy, trajectories."""

from keras_gae.agents.environments import EPISODE_HISTORY
from keras_gae.agents.environments import GymnasiumEnvironment
from keras_gae.agents.environments import make_tf_environment
from keras_gae.agents.policy import KerasPolicy
from keras_gae.agents.trajectories import trajectory_to_rollout_batch

__all__ = [
    "EPISODE_HISTORY",
    "GymnasiumEnvironment",
    "KerasPolicy",
    "make_tf_environment",
    "trajectory_to_rollout_batch",
]
