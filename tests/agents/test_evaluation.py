"""Tests of keras_gae.agents.EvaluationCallback inside the loop."""

import json
import re
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from tests.agents.run_outputs import USER_SCRIPT
from tests.agents.run_outputs import event_scalars
from tests.agents.run_outputs import output_sections
from tests.fresh_process import run_python

_SCRIPT = USER_SCRIPT + textwrap.dedent(
    """
    import json

    model, env = ppo(), cartpole()
    settings = SETTINGS

    class Seen(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.logs = []

        def on_epoch_end(self, epoch, logs=None):
            self.logs.append(dict(logs))
            if epoch == 3:
                self.model.stop_training = True

    # The TensorBoard writer and a callback reading the logs come before
    # the evaluation, which runs after iterations 2 and 4.
    evaluation = agents.EvaluationCallback(
        "CartPole-v1", interval=2, num_episodes=3, seed=5
    )
    seen = Seen()
    print("=== verbose 2", flush=True)
    history = agents.train(
        model, env, total_env_steps=10_000, verbose=2,
        callbacks=[agents.EnvStepTensorBoard(sys.argv[1]), seen, evaluation],
        **settings,
    )
    final = agents.evaluate_policy(
        model, "CartPole-v1", num_episodes=3, seed=5
    )
    print("=== verbose 1", flush=True)
    agents.train(
        model, env, total_env_steps=16, verbose=1,
        callbacks=[agents.EvaluationCallback(
            "CartPole-v1", interval=1, num_episodes=1
        )],
        **settings,
    )
    print("=== results", flush=True)
    print(json.dumps({
        "history": history.history,
        "epoch": history.epoch,
        "seen": [sorted(logs) for logs in seen.logs],
        "results": [[index, result["returns"]]
                    for index, result in evaluation.results],
        "final": final["returns"],
    }))
    """
)


class EvaluationCallbackTest(tf.test.TestCase):
    @pytest.mark.slow
    def test_results_reach_history_progress_and_tensorboard(self):
        log_dir = self.get_temp_dir()
        result = run_python(_SCRIPT, args=[log_dir], timeout=600)
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        sections = output_sections(result.stdout)
        out = json.loads(sections["results"])
        history = out["history"]

        # Four iterations, evaluated after the second and the fourth;
        # the last evaluation saw the final weights.
        self.assertEqual(out["epoch"], [0, 1, 2, 3])
        self.assertEqual([index for index, _ in out["results"]], [1, 3])
        returns = [episodes for _, episodes in out["results"]]
        self.assertEqual(returns[-1], out["final"])
        for episodes in returns:
            self.assertLen(episodes, 3)
        self.assertAllClose(
            history["eval_return_mean"], [np.mean(r) for r in returns]
        )
        self.assertAllClose(
            history["eval_return_std"], [np.std(r) for r in returns]
        )
        # A callback before the evaluation saw its keys, on those
        # iterations only.
        has_eval = ["eval_return_mean" in keys for keys in out["seen"]]
        self.assertEqual(has_eval, [False, True, False, True])

        # verbose=2: the evaluated iterations' lines end with the results.
        lines = sections["verbose 2"].splitlines()
        self.assertLen(lines, 5)  # four iterations and the stop line
        for line, evaluated in zip(lines, has_eval):
            found = re.search(
                r" eval_return_mean=([\d.]+) eval_return_std=([\d.]+)$", line
            )
            self.assertEqual(found is not None, evaluated, line)
        evaluated_lines = [line for line in lines[:4] if "eval_" in line]
        for line, episodes in zip(evaluated_lines, returns):
            self.assertEndsWith(
                line,
                f" eval_return_mean={np.mean(episodes):.2f} "
                f"eval_return_std={np.std(episodes):.2f}",
            )
        # verbose=1: the progress bar shows the evaluation.
        self.assertRegex(sections["verbose 1"], r"eval_return_mean: [\d.]+")

        # TensorBoard: under eval/, at the evaluated iterations' env steps.
        scalars = event_scalars(log_dir)
        evaluated_steps = [
            int(steps)
            for steps, evaluated in zip(history["env_steps"], has_eval)
            if evaluated
        ]
        for key in ("return_mean", "return_std"):
            points = sorted(scalars[f"eval/{key}"])
            self.assertEqual([step for step, _ in points], evaluated_steps)
            self.assertAllClose(
                [value for _, value in points], history[f"eval_{key}"]
            )
        self.assertFalse([tag for tag in scalars if "eval_" in tag])


if __name__ == "__main__":
    tf.test.main()
