"""tf-agents glue: environments, policy, trajectories, collect-and-fit loop.

tf-agents 0.19 needs Keras 2 inside; its modules are imported here, with
what they need, before any keras_gae module uses them (docs/design.md,
"Keras version"). The user's `keras` stays Keras 3.
"""

# ruff: noqa: E402

import contextlib as _contextlib
import io as _io

from keras_gae._src import dependencies as _dependencies

with _dependencies.keras2_inside():
    # tf-agents imports the legacy `gym`, which prints a "Gym has been
    # unmaintained" notice to stderr on import; keras_gae uses gymnasium.
    with _contextlib.redirect_stderr(_io.StringIO()):
        try:
            import gym  # noqa: F401
        except ImportError:
            pass
    import tf_agents.drivers.dynamic_step_driver  # noqa: F401
    import tf_agents.environments  # noqa: F401
    import tf_agents.metrics.tf_metrics  # noqa: F401
    import tf_agents.policies  # noqa: F401
    import tf_agents.policies.policy_saver  # noqa: F401
    import tf_agents.replay_buffers  # noqa: F401
    import tf_agents.trajectories  # noqa: F401
    import tf_agents.utils.common  # noqa: F401

from keras_gae.agents.a2c_agent import A2C
from keras_gae.agents.atari_environments import AtariGame
from keras_gae.agents.atari_environments import game_statistics
from keras_gae.agents.atari_environments import make_atari_env
from keras_gae.agents.default_networks import MLPNetwork
from keras_gae.agents.default_networks import ObservationEncoder
from keras_gae.agents.default_networks import SharedEncoderNetwork
from keras_gae.agents.default_networks import build_networks
from keras_gae.agents.environments import EPISODE_HISTORY
from keras_gae.agents.environments import GymnasiumEnvironment
from keras_gae.agents.evaluation import EvaluationCallback
from keras_gae.agents.evaluation import evaluate_policy
from keras_gae.agents.loop_logs import EnvStepTensorBoard
from keras_gae.agents.observation_normalization import ObservationNormalization
from keras_gae.agents.on_policy_agent import OnPolicyAgent
from keras_gae.agents.policy import KerasPolicy
from keras_gae.agents.ppo_agent import PPO
from keras_gae.agents.recurrent_networks import build_recurrent_network
from keras_gae.agents.reward_normalization import RewardNormalization
from keras_gae.agents.reward_normalization import attach_reward_normalization
from keras_gae.agents.space_types import policy_head_for
from keras_gae.agents.tf_environment_factory import make_tf_environment
from keras_gae.agents.trainer import OnPolicyTrainer
from keras_gae.agents.training import train
from keras_gae.agents.trajectories import trajectory_to_rollout_batch
from keras_gae.agents.vector_environment import GymnasiumVectorEnvironment

__all__ = [
    "A2C",
    "AtariGame",
    "EPISODE_HISTORY",
    "EnvStepTensorBoard",
    "EvaluationCallback",
    "GymnasiumEnvironment",
    "GymnasiumVectorEnvironment",
    "KerasPolicy",
    "MLPNetwork",
    "ObservationEncoder",
    "ObservationNormalization",
    "OnPolicyAgent",
    "OnPolicyTrainer",
    "PPO",
    "RewardNormalization",
    "SharedEncoderNetwork",
    "attach_reward_normalization",
    "build_networks",
    "build_recurrent_network",
    "evaluate_policy",
    "game_statistics",
    "make_atari_env",
    "make_tf_environment",
    "policy_head_for",
    "train",
    "trajectory_to_rollout_batch",
]
