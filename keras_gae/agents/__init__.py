"""tf-agents glue: gymnasium environments and Trajectory -> rollout batch."""

from keras_gae.agents.environments import EPISODE_HISTORY
from keras_gae.agents.environments import GymnasiumEnvironment
from keras_gae.agents.environments import make_tf_environment
from keras_gae.agents.trajectories import trajectory_to_rollout_batch

__all__ = [
    "EPISODE_HISTORY",
    "GymnasiumEnvironment",
    "make_tf_environment",
    "trajectory_to_rollout_batch",
]
