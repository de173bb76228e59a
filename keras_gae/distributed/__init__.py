"""Scale-out on Ray Core (optional extra): rollout workers, learner
processes under MultiWorkerMirroredStrategy and LM generation workers, each
as Ray actors.

Install with `pip install 'keras_gae[ray]'`. Importing this package does not
import ray; it is imported when workers are asked for. See docs/scaling.md.
"""

from keras_gae.distributed.generation_workers import GenerationWorkers
from keras_gae.distributed.learner_group import LearnerGroup
from keras_gae.distributed.learner_group import minibatch_order
from keras_gae.distributed.ray_runtime import import_ray
from keras_gae.distributed.ray_runtime import ray_cluster
from keras_gae.distributed.remote_collector import RemoteCollector
from keras_gae.distributed.rollout_worker import RolloutWorker
from keras_gae.distributed.running_statistics import Moments
from keras_gae.distributed.running_statistics import merge_moments
from keras_gae.distributed.worker_group import RolloutWorkers
from keras_gae.distributed.worker_group import WorkerTimeoutError

__all__ = [
    "GenerationWorkers",
    "LearnerGroup",
    "Moments",
    "RemoteCollector",
    "RolloutWorker",
    "RolloutWorkers",
    "WorkerTimeoutError",
    "import_ray",
    "merge_moments",
    "minibatch_order",
    "ray_cluster",
]
