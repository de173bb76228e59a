"""`make_tf_environment`: copies of a gymnasium environment as one TF env.

The batched tf-agents environment a driver steps: `num_envs` seeded
`GymnasiumEnvironment` copies (`keras_gae.agents.environments`, which
describes the specs, episode ends, auto-reset and seeding), or one
`GymnasiumVectorEnvironment` over a gymnasium vector env
(`keras_gae.agents.vector_environment`).
"""

from __future__ import annotations

from typing import Any
from typing import Mapping
from typing import Optional

import gymnasium
from tf_agents.environments import batched_py_environment
from tf_agents.environments import parallel_py_environment
from tf_agents.environments import tf_py_environment

from keras_gae.agents import vector_environment
from keras_gae.agents.environment_sources import check_env_kwargs
from keras_gae.agents.environment_sources import looks_like_env
from keras_gae.agents.environment_sources import not_gymnasium_error
from keras_gae.agents.environments import GymnasiumEnvironment
from keras_gae.ops import _checks

VECTORIZATION_MODES = (None, "auto", "sync", "async", "vector_entry_point")


def make_tf_environment(
    env: Any,
    *,
    num_envs: Optional[int] = None,
    seed: Optional[int] = 0,
    parallel: bool = False,
    env_kwargs: Optional[Mapping[str, Any]] = None,
    vectorization_mode: Optional[str] = None,
) -> tf_py_environment.TFPyEnvironment:
    """`num_envs` seeded copies of a gymnasium environment as one TF env.

    What `env` may be:

    * an id (or an `EnvSpec`, such as an instance's `env.spec`: copies
      with its keyword arguments and wrappers), or a factory (a callable
      returning a `gymnasium.Env`): copy `i`
      is `GymnasiumEnvironment(env, seed=seed + i, env_kwargs=env_kwargs)`;
    * a `gymnasium.Env` instance: one copy only (`num_envs` 1);
    * a `gymnasium.vector.VectorEnv` (next-step auto-reset, gymnasium's
      default): wrapped as it is by `GymnasiumVectorEnvironment`;
      `num_envs`, when given, must equal its `num_envs`.

    How the copies run (`vectorization_mode`, ids and factories only):

    * None: a `BatchedPyEnvironment` steps `GymnasiumEnvironment` copies
      one after another in this process, or with `parallel=True` a
      `ParallelPyEnvironment` runs each in its own process (which needs
      tf-agents' multiprocessing set up first: the program's main run
      through `tf_agents.system.multiprocessing.handle_main`).
    * "sync", "async", "vector_entry_point": `gymnasium.make_vec(env,
      num_envs, vectorization_mode=...)` (a factory: a `SyncVectorEnv` or
      `AsyncVectorEnv` of it) behind one `GymnasiumVectorEnvironment`:
      one Python call per batched step instead of one per copy.
      "vector_entry_point" is the environment's own NumPy-vectorized
      implementation (CartPole-v1 has one), "async" runs each copy in a
      subprocess (gymnasium's own, so no `handle_main` is needed).
    * "auto": "vector_entry_point" when the id registers one, else "sync".

    The sub-environments get seeds `seed + i` in every mode except
    "vector_entry_point", whose one vectorized environment draws all
    copies from one generator seeded with `seed`.

    Args:
      env: an id, an instance, a factory or a vector env (above).
      num_envs: number of copies B >= 1 (the batch size of the time
        steps); None: the vector env's, else 1.
      seed: seed of copy 0; copy i gets `seed + i`. None: unseeded.
      parallel: with `vectorization_mode=None`, a process per copy.
      env_kwargs: keyword arguments for `gymnasium.make` (or the factory).
      vectorization_mode: one of `VECTORIZATION_MODES` (above).

    Returns:
      A `TFPyEnvironment` with batch size `num_envs`.
    """
    vectorization_mode = _checks.check_option(
        vectorization_mode, "vectorization_mode", VECTORIZATION_MODES
    )
    if num_envs is not None:
        num_envs = _checks.check_positive_int(num_envs, "num_envs")
    if seed is not None:
        seed = _checks.check_int(seed, "seed")
    parallel = _checks.check_bool(parallel, "parallel")
    env_kwargs = check_env_kwargs(env_kwargs)

    if isinstance(env, gymnasium.vector.VectorEnv):
        if num_envs is not None and num_envs != env.num_envs:
            raise ValueError(
                f"`num_envs` must match the vector env's num_envs="
                f"{env.num_envs} (or be None). Received: num_envs={num_envs}"
            )
        if env_kwargs:
            raise ValueError(
                "`env_kwargs` does not apply to a vector env instance. "
                f"Received: env_kwargs={env_kwargs!r}"
            )
        return tf_py_environment.TFPyEnvironment(
            vector_environment.GymnasiumVectorEnvironment(env, seed=seed)
        )
    num_envs = 1 if num_envs is None else num_envs
    if isinstance(env, gymnasium.Env):
        if num_envs != 1:
            raise ValueError(
                "A gymnasium.Env instance is one environment; pass its id "
                "or a factory to make several copies. "
                f"Received: num_envs={num_envs}"
            )
        return tf_py_environment.TFPyEnvironment(
            batched_py_environment.BatchedPyEnvironment(
                [GymnasiumEnvironment(env, seed=seed)], multithreading=False
            )
        )
    if looks_like_env(env):
        raise not_gymnasium_error(env, f"env={env!r}")
    if not isinstance(
        env, (str, gymnasium.envs.registration.EnvSpec)
    ) and not callable(env):
        raise TypeError(
            "`env` must be a gymnasium environment id (str), a gymnasium.Env "
            "instance, a factory returning one, or a gymnasium vector env. "
            f"Received: env={env!r}"
        )
    if vectorization_mode is not None:
        vector_env = vector_environment.make_vector_env(
            env, num_envs, vectorization_mode, env_kwargs
        )
        return tf_py_environment.TFPyEnvironment(
            vector_environment.GymnasiumVectorEnvironment(vector_env, seed=seed)
        )

    def constructor(index: int):
        copy_seed = None if seed is None else int(seed) + index
        return lambda: GymnasiumEnvironment(
            env, seed=copy_seed, env_kwargs=env_kwargs
        )

    constructors = [constructor(index) for index in range(num_envs)]
    if parallel:
        environment = parallel_py_environment.ParallelPyEnvironment(
            constructors
        )
    else:
        environment = batched_py_environment.BatchedPyEnvironment(
            [make() for make in constructors], multithreading=False
        )
    return tf_py_environment.TFPyEnvironment(environment)
