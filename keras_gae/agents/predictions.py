"""`OnPolicyAgent.predict`: actions for observations, with a policy's state.

A feed-forward policy maps observations to actions. A recurrent one
(`policy="lstm"` or `"gru"`) also takes the state its previous step
returned and says which rows start an episode, as sb3-contrib's
`RecurrentPPO.predict` does:

    state, starts = None, np.ones(num_envs, bool)
    action, state = agent.predict(obs, state=state, episode_start=starts)

The state is a tuple of float32 arrays `[N, U]` (an LSTM's two, a GRU's
one), batched even for one unbatched observation (`N` = 1 then);
`state=None` is the zero state.
"""

from __future__ import annotations

from typing import Any
from typing import Optional

import numpy as np
import tensorflow as tf
from tf_agents.specs import tensor_spec

from keras_gae.agents import environment_checks


def _checked_state(model: Any, state: Any, rows: int, caller: str) -> tuple:
    """`state` as float32 arrays of the model's state spec with `rows`."""
    specs = tuple(model.state_spec())
    if state is None:
        return tuple(np.zeros((rows, *s.shape), np.float32) for s in specs)
    arrays = tuple(np.asarray(s, np.float32) for s in tf.nest.flatten(state))
    expected = [(rows, *s.shape) for s in specs]
    if [a.shape for a in arrays] != expected:
        raise ValueError(
            f"{caller}: `state` must be what the previous predict returned: "
            f"{len(specs)} array(s) of shapes {expected} for {rows} "
            f"observation(s). Received: state with shapes "
            f"{[a.shape for a in arrays]}"
        )
    if not all(np.isfinite(a).all() for a in arrays):
        raise ValueError(
            f"{caller}: `state` holds NaN or Inf. Received: state={state!r}"
        )
    return arrays


def _checked_starts(episode_start: Any, rows: int, caller: str) -> np.ndarray:
    """`episode_start` as a bool array `[rows]` (None: no row starts)."""
    if episode_start is None:
        return np.zeros(rows, bool)
    starts = np.asarray(episode_start)
    if starts.dtype.kind not in "biu" or starts.size != rows:
        raise ValueError(
            f"{caller}: `episode_start` must hold one bool per observation "
            f"({rows}). Received: episode_start={episode_start!r}"
        )
    if starts.dtype.kind != "b" and not np.isin(starts, (0, 1)).all():
        raise ValueError(
            f"{caller}: `episode_start` must hold 0/1 or bools. "
            f"Received: episode_start={episode_start!r}"
        )
    return starts.reshape(rows).astype(bool)


def predict(
    model: Any,
    observation_spec: Any,
    env_name: str,
    caller: str,
    observation: Any,
    *,
    state: Any = None,
    episode_start: Optional[Any] = None,
    deterministic: bool = True,
) -> Any:
    """The model's actions (and next state, if recurrent) for observations.

    Args:
      model: a keras_gae `ActorCriticModel`.
      observation_spec: the environment's observation spec (tf-agents).
      env_name: how errors name the environment.
      caller: how errors name the method (`"PPO.predict"`).
      observation: a batch `[N, ...]` (a nest allowed), or one observation
        as the environment returns it; checked as the environment's are.
      state: a recurrent policy's state from the previous call (None: the
        zero state). Refused for a feed-forward policy.
      episode_start: a recurrent policy's `[N]` bools, rows whose episode
        starts at this observation (their state is reset first). Refused
        for a feed-forward policy.
      deterministic: the greedy action, or a sample.

    Returns:
      Actions `[N, ...]` (one action for one observation) as the
      environment's `step` takes them; for a recurrent policy, the pair
      `(actions, next_state)`.

    Raises:
      ValueError: a bad observation, state or `episode_start`, naming it.
    """
    spec = tensor_spec.to_nest_array_spec(observation_spec)
    first = np.asarray(tf.nest.flatten(observation)[0])
    single = first.ndim == len(tf.nest.flatten(spec)[0].shape)
    # The environment's own checks (shape, dtype, NaN and Inf, ids outside
    # the space), naming the field.
    observation = environment_checks.ObservationConverter(
        spec,
        env_name,
        batch_shape=() if single else first.shape[:1],
        caller=caller,
    )(observation)
    if single:
        observation = tf.nest.map_structure(lambda x: x[None], observation)
    rows = 1 if single else int(first.shape[0])
    if not model.recurrent:
        for name, value in (("state", state), ("episode_start", episode_start)):
            if value is not None:
                raise ValueError(
                    f"{caller}: `{name}` is for recurrent policies "
                    f"(policy='lstm' or 'gru'); this policy has no state. "
                    f"Received: {name}={value!r}"
                )
        step = model.act(observation, deterministic=deterministic)
    else:
        step = model.act(
            observation,
            deterministic=deterministic,
            state=tuple(
                tf.constant(a)
                for a in _checked_state(model, state, rows, caller)
            ),
            episode_start=_checked_starts(episode_start, rows, caller),
        )
    action = model.policy_head.postprocess_action(step.action).numpy()
    action = action[0] if single else action
    if not model.recurrent:
        return action
    return action, tuple(np.asarray(s) for s in step.state)
