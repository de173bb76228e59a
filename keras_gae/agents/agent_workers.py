"""An agent's model, built alike in the learner and in rollout workers.

`build_agent_model(agent_class, settings, observation_spec, action_spec,
num_envs)` is the one recipe of an agent's model: the networks sized from
the spaces, the algorithm's model, and reward normalization for
`num_envs` environments when the settings ask for it. The agent builds
its learner model with it; with `num_workers`, `start_rollout_workers`
hands it (as a picklable `functools.partial`) to every rollout worker,
which builds the same architecture for its own environments and then
takes the learner's weights. Ray is imported only there, when workers
are asked for (`keras_gae.distributed`).
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any
from typing import Dict
from typing import Optional

import gymnasium
from tf_agents.specs import tensor_spec

from keras_gae.agents import reward_normalization
from keras_gae.agents.default_networks import SharedEncoderNetwork
from keras_gae.agents.default_networks import build_networks
from keras_gae.agents.recurrent_networks import build_recurrent_network
from keras_gae.models import ActorCriticModel
from keras_gae.ops import _checks


def build_agent_model(
    agent_class: Any,
    settings: Dict[str, Any],
    observation_spec: Any,
    action_spec: Any,
    num_envs: int,
) -> ActorCriticModel:
    """The agent's model for these specs, built (module docstring).

    Args:
      agent_class: the `OnPolicyAgent` subclass (its `make_model`).
      settings: the agent's resolved settings.
      observation_spec, action_spec: the environment's tf-agents specs.
      num_envs: the environments whose rewards the reward normalization
        (if any) follows.
    """
    network_settings = dict(
        hidden_sizes=settings["hidden_sizes"],
        activation=settings["activation"],
        normalize_observations=settings["normalize_observations"],
        action_bound=settings["action_bound"],
        initial_log_std=settings["initial_log_std"],
    )
    if settings.get("recurrent_cell"):
        shared = build_recurrent_network(
            observation_spec,
            action_spec,
            cell=settings["recurrent_cell"],
            units=settings["recurrent_units"],
            **network_settings,
        )
        model = agent_class.make_model(settings, shared=shared)
    else:
        actor, critic = build_networks(
            observation_spec, action_spec, **network_settings
        )
        if actor.encoder.has_weights:
            # One pass of a learned encoder (a Nature CNN) per step, not
            # one per network.
            shared = SharedEncoderNetwork(actor, critic, name="actor_critic")
            model = agent_class.make_model(settings, shared=shared)
        else:
            model = agent_class.make_model(settings, actor, critic)
    if settings["normalize_rewards"]:
        reward_normalization.attach_reward_normalization(
            model,
            reward_normalization.RewardNormalization(
                num_envs, gamma=settings["gamma"], name="reward_normalization"
            ),
        )
    model(tensor_spec.zero_spec_nest(observation_spec, outer_dims=(1,)))
    return model


def check_worker_arguments(
    num_workers: Optional[int], ray_address: Optional[str], source: Any
) -> None:
    """Refuses rollout-worker arguments an agent cannot start workers with.

    Raises:
      ValueError: `ray_address` without `num_workers`, `num_workers` < 1,
        or a `source` workers cannot make environments from
        (`check_worker_source`).
      TypeError: `num_workers` not an int.
    """
    if num_workers is None and ray_address is not None:
        raise ValueError(
            "`ray_address` is where rollout workers run; pass "
            "num_workers too. "
            f"Received: ray_address={ray_address!r}, num_workers=None"
        )
    if num_workers is not None:
        _checks.check_positive_int(num_workers, "num_workers")
        check_worker_source(source)


def check_worker_source(source: Any) -> Any:
    """`source` if rollout workers can make environments from it.

    Raises:
      ValueError: an environment instance (a process of its own cannot
        share it): the workers need an id, an `EnvSpec` or a factory.
    """
    if isinstance(source, (gymnasium.Env, gymnasium.vector.VectorEnv)):
        raise ValueError(
            "Rollout workers make their own environments: pass a gymnasium "
            "id, an EnvSpec or a picklable factory, not an instance "
            "(without a registered spec). "
            f"Received: env={source!r}"
        )
    return source


def start_rollout_workers(
    agent_class: Any,
    settings: Dict[str, Any],
    source: Any,
    *,
    num_workers: int,
    seed: int,
    env_kwargs: Dict[str, Any],
    vectorization_mode: Optional[str],
    return_window: int,
    ray_address: Optional[str],
    worker_timeout_s: float,
    exit_stack: contextlib.ExitStack,
) -> Any:
    """Connects to (or starts) Ray and starts the agent's rollout workers.

    The cluster and the workers are closed by `exit_stack`
    (`keras_gae.distributed.ray_cluster`: a local cluster it started is
    shut down, a user's cluster keeps running).

    Returns:
      The `keras_gae.distributed.RolloutWorkers`, `settings["num_envs"]`
      environments each.
    """
    from keras_gae import distributed

    exit_stack.enter_context(distributed.ray_cluster(ray_address))
    workers = distributed.RolloutWorkers(
        check_worker_source(source),
        model_fn=functools.partial(
            build_agent_model, agent_class, dict(settings)
        ),
        num_workers=num_workers,
        num_envs=settings["num_envs"],
        rollout_length=settings["rollout_length"],
        seed=seed,
        env_kwargs=env_kwargs,
        vectorization_mode=vectorization_mode,
        return_window=return_window,
        worker_timeout_s=worker_timeout_s,
    )
    exit_stack.callback(workers.close)
    return workers
