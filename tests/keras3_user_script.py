"""What a Keras 3 user does with keras_gae, from the first import on.

Run by tests/test_import_orders.py as `python tests/keras3_user_script.py
ORDER WORK_DIR`, once per import order. ORDER names what comes first:
"tensorflow" (import tensorflow, then keras, then keras_gae), "keras",
"tf_keras_touched" (tf.keras used before keras_gae) or "keras_gae".
"""

import sys

ORDER, WORK_DIR = sys.argv[1], sys.argv[2]

if ORDER == "tensorflow":
    import keras
    import tensorflow as tf

    import keras_gae
elif ORDER == "keras":
    import keras
    import tensorflow as tf

    import keras_gae
elif ORDER == "tf_keras_touched":
    import tensorflow as tf

    tf.keras.layers.Dense(1)
    import keras

    import keras_gae
elif ORDER == "keras_gae":
    import keras
    import tensorflow as tf

    import keras_gae
else:
    raise SystemExit(f"unknown ORDER {ORDER!r}")

import os  # noqa: E402
import subprocess  # noqa: E402

import numpy as np  # noqa: E402

import keras_gae.agents as kga  # noqa: E402

# The user's Keras is Keras 3, and so is tf.keras: keras_gae (and the
# tf-agents it imports) switched nothing to Keras 2.
assert keras.__version__.startswith("3."), keras.__version__
assert tf.keras.layers.Layer is keras.layers.Layer
assert "TF_USE_LEGACY_KERAS" not in os.environ

actor = keras.Sequential(
    [
        keras.layers.Dense(32, activation="tanh"),
        keras_gae.layers.CategoricalPolicyHead(2),
    ]
)
critic = keras.Sequential(
    [keras.layers.Dense(32, activation="tanh"), keras.layers.Dense(1)]
)
model = keras_gae.models.PPOModel(actor, critic)
model.compile(optimizer=keras.optimizers.Adam(1e-3))

# fit on a rollout batch.
rng = np.random.default_rng(0)
batch = {
    "observation": rng.normal(size=(4, 8, 4)).astype("float32"),
    "action": rng.integers(0, 2, size=(4, 8)),
    "reward": rng.normal(size=(4, 8)).astype("float32"),
    "log_prob": np.full((4, 8), np.log(0.5), "float32"),
    "value": np.zeros((4, 8), "float32"),
    "bootstrap_value": np.zeros(4, "float32"),
}
history = model.fit(
    keras_gae.models.rollout_dataset(batch, num_minibatches=2),
    epochs=2,
    verbose=0,
)
assert len(history.history["loss"]) == 2

# .keras save and load.
path = os.path.join(WORK_DIR, "ppo.keras")
model.save(path)
restored = keras.saving.load_model(path)
observations = batch["observation"][:, 0]
for got, want in zip(restored(observations), model(observations)):
    np.testing.assert_allclose(got, want, atol=1e-6)

# CartPole through the tf-agents bridge.
env = kga.make_tf_environment("CartPole-v1", num_envs=4, seed=0)
history = kga.train(
    model,
    env,
    rollout_length=32,
    total_env_steps=256,
    epochs=2,
    num_minibatches=2,
    verbose=0,
)
assert isinstance(history, keras.callbacks.History), history
assert history.history["loss"], history.history

# A SavedModel that loads where keras_gae cannot be imported.
policy_dir = os.path.join(WORK_DIR, "policy")
keras_gae.export.export_policy(
    model, policy_dir, observation_spec=env.observation_spec()
)
load = (
    "import sys; sys.modules['keras_gae'] = None\n"
    "import numpy as np, tensorflow as tf\n"
    f"policy = tf.saved_model.load({policy_dir!r})\n"
    "action = policy.signatures['action'](\n"
    "    observation=tf.zeros([3, 4], tf.float32))\n"
    "print(sorted(action))\n"
)
result = subprocess.run(
    [sys.executable, "-c", load], capture_output=True, text=True, check=False
)
assert result.returncode == 0, result.stderr[-3000:]
print("OK", ORDER)
