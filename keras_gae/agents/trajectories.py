"""tf-agents trajectories as keras_gae rollout batches.

`trajectory_to_rollout_batch` turns a batch-major tf-agents `Trajectory`
`[B, T]` (from `TFUniformReplayBuffer.gather_all()` or
`as_dataset(single_deterministic_pass=True)`) into the rollout-batch dict
that keras_gae models train on (docs/design.md, "Rollout batch"). Letters: `B`
environments, `T` rows per environment.

Layout. A driver writes one row per environment step:
`from_transition(time_step, action_step, next_time_step)`, so row t holds

    step_type[t], observation[t], action[t], policy_info[t]  (of s_t)
    next_step_type[t], reward[t], discount[t]                (of s_{t+1})

and the policy is asked for an action, its log-probability and V(s_t) at
every time step, LAST ones included. Row kinds:

* `next_step_type[t]` LAST with `discount[t] == 0`: terminated; s_{t+1} is
  terminal and is not bootstrapped.
* `next_step_type[t]` LAST with `discount[t] > 0` (tf-agents truncation):
  truncated; its bootstrap V(s_{t+1}) is the next row's `value`, the one
  recorded at the LAST time step (the final observation). So the batch
  needs no `truncation_value` column.
* `step_type[t]` LAST: the boundary row LAST -> FIRST written by the
  auto-reset. Its transition does not exist: `mask[t]` is False, its
  advantage 0, and it cuts the trace. Its action and reward (0) are unused.
* The last row bootstraps from `bootstrap_value`, V(s_T) of the driver's
  final time step, which the caller passes explicitly: the value after the
  last row is not in the data.

A worked example, B=2, T=6, first letter the episode, digit the step:

    env 0   t:     0      1      2      3      4      5
    step_type      FIRST  MID    MID    LAST   FIRST  MID
    observation    a0     a1     a2     a3     b0     b1
    next_step_type MID    MID    LAST   FIRST  MID    MID
    reward         r      r      r      0      r      r
    discount       1      1      0      1      1      1
    value          V(a0)  V(a1)  V(a2)  V(a3)  V(b0)  V(b1)
    terminated     F      F      T      F      F      F
    truncated      F      F      F      F      F      F
    mask           T      T      T      F      T      T
    -> bootstrap_value[0] = V(b2); a2's V(a3) is not used (terminal).

    env 1   t:     0      1      2      3      4      5
    step_type      FIRST  MID    LAST   FIRST  MID    MID
    observation    c0     c1     c2     d0     d1     d2
    next_step_type MID    LAST   FIRST  MID    MID    LAST
    reward         r      r      0      r      r      r
    discount       1      1      1      1      1      0
    value          V(c0)  V(c1)  V(c2)  V(d0)  V(d1)  V(d2)
    terminated     F      F      F      F      F      T
    truncated      F      T      F      F      F      F
    mask           T      T      F      T      T      T
    -> c1 bootstraps from value[1, 2] = V(c2) (truncated); bootstrap_value[1]
       = V(d3) is not used (d2's row is terminated).

Rewards and discounts belong to the row's transition. The tf-agents
`discount` is the environment's (`GymnasiumEnvironment`'s `discount` on
non-terminal steps, 0 on terminal ones), used here only to tell termination
from truncation; the GAE `gamma` is the model's.
"""

from __future__ import annotations

from typing import Any
from typing import Dict
from typing import Mapping

import tensorflow as tf
from tf_agents.trajectories import time_step as ts
from tf_agents.trajectories import trajectory as trajectory_lib

from keras_gae._src import rollout_batch as rb
from keras_gae.ops import _checks

_BATCH_MAJOR = "[B, T], batch-major"


def trajectory_to_rollout_batch(
    trajectory: trajectory_lib.Trajectory,
    bootstrap_value: Any,
    *,
    value_key: str = rb.VALUE,
    log_prob_key: str = rb.LOG_PROB,
    state_key: str = rb.INITIAL_STATE,
) -> Dict[str, Any]:
    """Converts a batch-major tf-agents `Trajectory` to a rollout batch.

    Per row t (see the module docstring for the layout and an example):

        terminated[t] = next_step_type[t] == LAST and discount[t] == 0
        truncated[t]  = next_step_type[t] == LAST and discount[t] > 0
        mask[t]       = step_type[t] != LAST

    Feeding the batch to `keras_gae.ops.generalized_advantage_estimation`
    (`time_major=False`) gives each episode's GAE (Schulman et al. 2015,
    arXiv:1506.02438) with truncations bootstrapped from V(final
    observation), terminations not bootstrapped, and no trace crossing an
    episode boundary.

    Args:
      trajectory: a `Trajectory` whose fields are `[B, T, ...]` tensors (or
        arrays), collected by a policy whose `policy_info` is a mapping with
        `log_prob_key` and `value_key`, each `[B, T]`; `value` is V(s_t) of
        every row's observation, LAST rows included.
      bootstrap_value: `[B]` float V(s_T), the value of the time step after
        the last row (the driver's final time step).
      value_key: key of V(s_t) in `policy_info`.
      log_prob_key: key of log pi(a_t given s_t) in `policy_info`.
      state_key: key of the recurrent state each step started from in
        `policy_info` (a nest of `[B, T, U]`), if a recurrent policy
        collected; its first step becomes "initial_state".

    Returns:
      A dict with `observation` and `action` (the trajectory's nests,
      `[B, T, ...]`), `reward`, `log_prob` and `value` (`[B, T]` as
      recorded), `bootstrap_value` (`[B]`), and `terminated`, `truncated`
      and `mask` (`[B, T]` bool); "initial_state" (`[B, U]` tensors)
      when `policy_info` holds `state_key`.

    Raises:
      ValueError: fields not of rank 2, mismatched shapes, a missing key in
        `policy_info`.
      TypeError: `policy_info` not a dict, non-float values or rewards.
    """
    if not isinstance(trajectory, trajectory_lib.Trajectory):
        raise TypeError(
            "`trajectory` must be a tf_agents Trajectory. "
            f"Received: trajectory={type(trajectory).__name__}"
        )
    info = trajectory.policy_info
    # tf-agents may hand the dict back wrapped for tracking (a dict proxy).
    if not isinstance(info, (dict, Mapping)):
        raise TypeError(
            "`trajectory.policy_info` must be a dict holding "
            f"{log_prob_key!r} and {value_key!r}. "
            f"Received: trajectory.policy_info={info!r}"
        )
    for key, argument in (
        (value_key, "value_key"),
        (log_prob_key, "log_prob_key"),
    ):
        if key not in info:
            raise ValueError(
                f"`trajectory.policy_info` has no {key!r} entry (set by "
                f"`{argument}`); it holds {sorted(info)}. "
                f"Received: {argument}={key!r}"
            )
    with tf.name_scope("trajectory_to_rollout_batch"):
        step_type = tf.convert_to_tensor(trajectory.step_type)
        _checks.check_rank(step_type, 2, "trajectory.step_type", _BATCH_MAJOR)
        fields = {
            "trajectory.next_step_type": tf.convert_to_tensor(
                trajectory.next_step_type
            ),
            "trajectory.reward": _checks.convert_float(
                trajectory.reward, "trajectory.reward"
            ),
            "trajectory.discount": _checks.convert_float(
                trajectory.discount, "trajectory.discount"
            ),
            f"trajectory.policy_info[{value_key!r}]": _checks.convert_float(
                info[value_key], f"trajectory.policy_info[{value_key!r}]"
            ),
            f"trajectory.policy_info[{log_prob_key!r}]": (
                _checks.convert_float(
                    info[log_prob_key],
                    f"trajectory.policy_info[{log_prob_key!r}]",
                )
            ),
        }
        assertions = []
        for name, tensor in fields.items():
            _checks.check_rank(tensor, 2, name, _BATCH_MAJOR)
            assertions.extend(
                _checks.check_same_shape(
                    tensor, step_type, name, "trajectory.step_type"
                )
            )
        next_step_type, reward, discount, value, log_prob = fields.values()

        bootstrap_value, checks = _checks.convert_batch_vector(
            bootstrap_value,
            "bootstrap_value",
            step_type,
            0,
            "trajectory.step_type",
        )
        assertions.extend(checks)
        with tf.control_dependencies(assertions):
            next_is_last = tf.equal(
                next_step_type, tf.cast(ts.StepType.LAST, next_step_type.dtype)
            )
        terminal = tf.equal(discount, tf.zeros([], discount.dtype))
        as_tensors = lambda nest: tf.nest.map_structure(  # noqa: E731
            tf.convert_to_tensor, nest
        )
        batch = {
            rb.OBSERVATION: as_tensors(trajectory.observation),
            rb.ACTION: as_tensors(trajectory.action),
            rb.REWARD: reward,
            rb.TERMINATED: tf.logical_and(next_is_last, terminal),
            rb.TRUNCATED: tf.logical_and(
                next_is_last, tf.logical_not(terminal)
            ),
            rb.LOG_PROB: log_prob,
            rb.VALUE: value,
            rb.BOOTSTRAP_VALUE: bootstrap_value,
            rb.MASK: tf.not_equal(
                step_type, tf.cast(ts.StepType.LAST, step_type.dtype)
            ),
        }
        if state_key in info:
            batch[rb.INITIAL_STATE] = tf.nest.map_structure(
                lambda x: tf.convert_to_tensor(x)[:, 0], info[state_key]
            )
        return batch
