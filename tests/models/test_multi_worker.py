"""MultiWorkerMirroredStrategy: two worker processes equal one device.

Two processes on 127.0.0.1, each with its TF_CONFIG, train PPOModel on the
same global rollout batches (sharded by data); both must end with the
weights that one device reaches on the global batches.
"""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tests.models import multi_worker_train

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))


def _free_ports(count: int) -> list:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _start_worker(index: int, cluster: dict, output: str):
    env = dict(os.environ)
    env["TF_CONFIG"] = json.dumps(
        {"cluster": cluster, "task": {"type": "worker", "index": index}}
    )
    env["PYTHONPATH"] = _ROOT + os.pathsep + env.get("PYTHONPATH", "")
    command = [sys.executable, "-m", "tests.models.multi_worker_train", output]
    return subprocess.Popen(
        command,
        cwd=_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.mark.slow
class MultiWorkerTest(tf.test.TestCase):
    def test_two_workers_equal_one_device_on_the_global_batch(self):
        cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
        directory = self.get_temp_dir()
        outputs = [os.path.join(directory, f"worker{i}.npz") for i in (0, 1)]
        workers = [
            _start_worker(index, cluster, output)
            for index, output in enumerate(outputs)
        ]
        try:
            logs = [worker.communicate(timeout=300)[0] for worker in workers]
        finally:
            for worker in workers:
                worker.kill()
        for worker, log in zip(workers, logs):
            self.assertEqual(worker.returncode, 0, log[-3000:])

        expected = multi_worker_train.train(tf.distribute.get_strategy())
        for output in outputs:
            with np.load(output) as saved:
                self.assertEqual(int(saved["replicas"]), 2)
                weights = [saved[f"arr_{i}"] for i in range(len(expected))]
            for got, want in zip(weights, expected):
                self.assertAllClose(got, want, atol=1e-6, rtol=0)
