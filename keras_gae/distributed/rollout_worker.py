"""A rollout worker: environments, a policy copy and a collector in one actor.

`RolloutWorker` is the body of the Ray actor `RolloutWorkers` starts (the
class itself imports no ray: `ray.remote(RolloutWorker)` makes the actor,
and a test may build one in-process). A worker owns `num_envs`
environments, made by `keras_gae.agents.make_tf_environment` from an id, a
picklable factory or an `EnvSpec`, and a copy of the policy, built in the
worker by the same picklable `model_fn` the learner's model comes from, so
no Keras model crosses a process boundary: only its weights, as a list of
arrays, in the order of `policy_variables`. Each call to `collect` sets
those weights, collects one rollout of `T` rows per environment with
`RolloutCollector`, the code a single process runs, and returns numpy
arrays.

Seeds. Worker `i` of a run seeded `seed` starts as a single process of
`num_workers * num_envs` environments would: its environment `j` gets the
seed `seed + i * num_envs + j` and its action sampling TensorFlow's global
seed `seed + i * num_envs` (`worker_seed`). A worker's later generations
`g > 0` (a replacement after a crash; a run resumed from a checkpoint,
whose workers make their environments again in place) start from a seed
derived from `(seed, i, g)` instead: their environments begin new episodes
from streams the run has not used, and a resumed run repeats itself.

Running statistics stay with the learner (the collector is built with
`update_statistics=False`): the observation statistics arrive with the
weights; the batch's rewards are the environment's. A model with reward
normalization keeps only its per-environment running returns here, which
`collect` advances, returning the moments of the round's returns for the
learner to merge (`keras_gae.distributed.running_statistics`).
"""

from __future__ import annotations

import os
import socket
from typing import Any
from typing import Callable
from typing import Dict
from typing import List
from typing import Mapping
from typing import Optional

import numpy as np

# model_fn(observation_spec, action_spec, num_envs) -> an ActorCriticModel.
ModelFn = Callable[[Any, Any, int], Any]


def worker_seed(
    seed: int, worker_index: int, num_envs: int, generation: int
) -> int:
    """The seed of worker `worker_index`'s first environment.

    Generation 0 gives `seed + worker_index * num_envs`, the seeds one
    process of all the workers' environments would use; a later
    generation (the worker made again) one drawn from
    `numpy.random.SeedSequence([seed, worker_index, generation])`.
    """
    if generation == 0:
        return seed + worker_index * num_envs
    entropy = [seed % 2**32, worker_index, generation]
    state = np.random.SeedSequence(entropy).generate_state(1)
    return int(state[0] % 2**30)


def reward_normalization_of(model: Any) -> Any:
    """The model's `RewardNormalization` (attached), or None."""
    from keras_gae.agents import reward_normalization

    return getattr(
        model, reward_normalization.REWARD_NORMALIZATION_ATTRIBUTE, None
    )


def policy_variables(model: Any) -> List[Any]:
    """The variables the learner broadcasts to the workers, in order.

    All the model's weights (networks and observation statistics) except
    its reward normalization's, which differ by role: per-environment
    returns in each worker, merged statistics at the learner.
    """
    reward_normalization = reward_normalization_of(model)
    excluded = set()
    if reward_normalization is not None:
        excluded = {id(v) for v in reward_normalization.weights}
    return [v for v in model.weights if id(v) not in excluded]


def build_policy_model(model_fn: ModelFn, env: Any) -> Any:
    """`model_fn`'s model for `env`'s specs, built (called once on zeros)."""
    from tf_agents.specs import tensor_spec

    observation_spec = env.observation_spec()
    model = model_fn(observation_spec, env.action_spec(), int(env.batch_size))
    model(tensor_spec.zero_spec_nest(observation_spec, outer_dims=(1,)))
    return model


class RolloutWorker:
    """Environments, a policy copy and a `RolloutCollector` (module docs).

    Args:
      env: what `make_tf_environment` takes: an id, an `EnvSpec` or a
        picklable factory returning a `gymnasium.Env`.
      model_fn: picklable `model_fn(observation_spec, action_spec,
        num_envs)` returning the learner's kind of `ActorCriticModel`
        (reward normalization attached for `num_envs` environments if the
        learner's model has it).
      num_envs: this worker's environments, >= 1.
      rollout_length: T, rows per environment per rollout.
      seed: the run's seed (`worker_seed`).
      worker_index: i, this worker's place among the workers.
      generation: how many times worker i was made before (`worker_seed`).
      env_kwargs: keyword arguments of `gymnasium.make` (or the factory).
      vectorization_mode: `make_tf_environment`'s.
      return_window: finished episodes the collector's statistics keep.
    """

    def __init__(
        self,
        env: Any,
        *,
        model_fn: ModelFn,
        num_envs: int,
        rollout_length: int,
        seed: int,
        worker_index: int,
        generation: int = 0,
        env_kwargs: Optional[Mapping[str, Any]] = None,
        vectorization_mode: Optional[str] = None,
        return_window: int = 20,
    ):
        self.worker_index = worker_index
        self._seed = seed
        self._num_envs = num_envs
        self._make_environments = dict(
            env=env,
            env_kwargs=env_kwargs,
            vectorization_mode=vectorization_mode,
        )
        self._collection = dict(
            rollout_length=rollout_length, return_window=return_window
        )
        self._env = None
        self._begin(generation, model_fn)

    def _begin(self, generation: int, model_fn: Optional[ModelFn] = None):
        """Environments and a collector for `generation` (`worker_seed`).

        The model is built once, from `model_fn`, on the first call.
        """
        import tensorflow as tf

        from keras_gae import agents
        from keras_gae.agents.rollout_collector import RolloutCollector

        if self._env is not None:
            self._env.close()
        self.generation = generation
        first_seed = worker_seed(
            self._seed, self.worker_index, self._num_envs, generation
        )
        # Sampling follows the global seed the collector is traced under.
        tf.random.set_seed(first_seed)
        self._env = agents.make_tf_environment(
            num_envs=self._num_envs, seed=first_seed, **self._make_environments
        )
        if model_fn is not None:
            self._model = build_policy_model(model_fn, self._env)
            self._variables = policy_variables(self._model)
            self._reward_normalization = reward_normalization_of(self._model)
        self._collector = RolloutCollector(
            self._model,
            self._env,
            update_statistics=False,
            **self._collection,
        )

    def describe(self) -> Dict[str, Any]:
        """Where this worker runs: index, generation, host and process."""
        return {
            "worker_index": self.worker_index,
            "generation": self.generation,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "num_envs": int(self._env.batch_size),
        }

    def set_weights(self, weights: List[np.ndarray]) -> None:
        """Sets the policy's variables (`policy_variables` order)."""
        if len(weights) != len(self._variables):
            raise ValueError(
                f"Rollout worker {self.worker_index} holds "
                f"{len(self._variables)} policy variables, the learner sent "
                f"{len(weights)}: model_fn builds another model than the "
                f"learner's. Received: len(weights)={len(weights)}"
            )
        for variable, value in zip(self._variables, weights):
            if tuple(variable.shape) != np.shape(value):
                raise ValueError(
                    f"Rollout worker {self.worker_index}: variable "
                    f"{variable.path} has shape {tuple(variable.shape)}, "
                    "the learner's has another: model_fn builds another "
                    "model than the learner's. "
                    f"Received: shape={np.shape(value)}"
                )
            variable.assign(value)

    def collect(
        self,
        weights: List[np.ndarray],
        version: int,
        returns: Optional[np.ndarray] = None,
        generation: Optional[int] = None,
    ) -> Dict[str, Any]:
        """Sets `weights`, collects one rollout `[num_envs, T]`.

        Args:
          weights: the policy's variables (`policy_variables` order).
          version: the policy version (the learner's iteration) they are.
          returns: the running returns `[num_envs]` of the reward
            normalization to continue from (the learner's record of this
            worker's), or None to keep this worker's.
          generation: None, or the generation to collect in: another
            than this worker's makes its environments (and collector)
            again from that generation's seeds first, in this process.

        Returns:
          A dict: `describe()`'s keys, "batch" (the rollout batch as numpy
          arrays, the environment's rewards), "version" (`version`),
          "env_steps" (the batch's valid rows), "episodes"
          (how many episodes finished in this rollout), "finished" (the
          last of them, at most `return_window`, as `[n, 2]` return and
          length, oldest first),
          "return_moments" (count, mean, variance of the round's running
          returns, or None without reward normalization) and "returns"
          (the running returns after the round, or None).
        """
        import tensorflow as tf

        from keras_gae._src import rollout_batch as rb

        if generation is not None and generation != self.generation:
            self._begin(generation)
        self.set_weights(weights)
        statistics = self._collector.episode_statistics
        episodes_before = int(statistics.episodes.numpy())
        batch = self._collector.collect()
        result = dict(
            self.describe(),
            version=version,
        )
        result.update(
            {
                "env_steps": int(np.sum(batch[rb.MASK].numpy())),
                "return_moments": None,
                "returns": None,
            }
        )
        finished = int(statistics.episodes.numpy()) - episodes_before
        result["episodes"] = finished
        result["finished"] = statistics.last_finished(finished).numpy()
        normalization = self._reward_normalization
        if normalization is not None:
            if returns is not None:
                normalization.returns.assign(returns)
            valid = normalization.update_returns(
                batch[rb.REWARD],
                batch[rb.TERMINATED] | batch[rb.TRUNCATED],
                batch[rb.MASK],
            ).numpy()
            result["return_moments"] = (
                float(valid.size),
                float(np.mean(valid, dtype=np.float64)) if valid.size else 0.0,
                float(np.var(valid, dtype=np.float64)) if valid.size else 0.0,
            )
            result["returns"] = normalization.returns.numpy()
        result["batch"] = tf.nest.map_structure(lambda x: x.numpy(), batch)
        return result
