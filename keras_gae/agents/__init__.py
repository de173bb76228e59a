"""tf-agents glue: environments, policy, trajectories, collect-and-fit loop.

tf-agents 0.19 needs Keras 2 inside; its modules are imported here, with
what they need, before any keras_gae module uses them (docs/design.md,
"Keras version"). The user's `keras` stays Keras 3.
"""

# ruff: noqa: E402

from keras_gae._src import dependencies as _dependencies

with _dependencies.keras2_inside():
    import tf_agents.drivers.dynamic_step_driver  # noqa: F401
    import tf_agents.environments  # noqa: F401
    import tf_agents.metrics.tf_metrics  # noqa: F401
    import tf_agents.policies  # noqa: F401
    import tf_agents.policies.policy_saver  # noqa: F401
    import tf_agents.replay_buffers  # noqa: F401
    import tf_agents.trajectories  # noqa: F401
    import tf_agents.utils.common  # noqa: F401

from keras_gae.agents.environments import EPISODE_HISTORY
from keras_gae.agents.environments import GymnasiumEnvironment
from keras_gae.agents.environments import make_tf_environment
from keras_gae.agents.policy import KerasPolicy
from keras_gae.agents.trainer import OnPolicyTrainer
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
