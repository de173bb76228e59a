"""The preset table: merging, A2C's overrides, SB3's names, typos."""

import tensorflow as tf

from keras_gae import presets
from tests.fresh_process import run_python


class ConfigForTest(tf.test.TestCase):
    def test_environment_values_override_defaults(self):
        config = presets.config_for("Pendulum-v1")
        self.assertEqual(set(config), set(presets.DEFAULTS))
        self.assertEqual(
            config["gamma"], presets.ENV_CONFIGS["Pendulum-v1"]["gamma"]
        )
        self.assertEqual(config["value_coef"], presets.DEFAULTS["value_coef"])
        self.assertEqual(presets.config_for("Unknown-v0"), presets.DEFAULTS)
        self.assertEqual(presets.config_for(None), presets.DEFAULTS)
        # A new dict each call.
        config["gamma"] = 0.5
        self.assertNotEqual(presets.config_for("Pendulum-v1")["gamma"], 0.5)

    def test_a2c_overrides(self):
        config = presets.config_for("CartPole-v1", "a2c")
        for key, value in presets.A2C_OVERRIDES.items():
            self.assertEqual(config[key], value, key)
        # What A2C leaves alone stays the environment's; it has no clip.
        self.assertEqual(config["target_return"], 475.0)
        for key in presets.PPO_ONLY:
            self.assertNotIn(key, config)

    def test_every_environment_config_is_consistent(self):
        for env_id in presets.ENV_CONFIGS:
            for algorithm in presets.ALGORITHMS:
                config = presets.config_for(env_id, algorithm)
                if config["minibatch_mode"] == "rows":
                    self.assertEqual(
                        config["num_envs"] % config["num_minibatches"],
                        0,
                        msg=(env_id, algorithm),
                    )
                self.assertLessEqual(set(config), set(presets.DEFAULTS))

    def test_atari_games_match_the_pattern(self):
        # RL Zoo's Atari PPO (its atari hyperparameters).
        rl_zoo = dict(
            num_envs=8,
            rollout_length=128,
            epochs=4,
            learning_rate=2.5e-4,
            learning_rate_schedule="linear",
            clip_ratio=0.1,
            entropy_coef=0.01,
            value_coef=0.5,
            gamma=0.99,
            lambda_=0.95,
            max_grad_norm=0.5,
            hidden_sizes=(),  # SB3's CnnPolicy: heads on the CNN features
        )
        for env_id in ("ALE/Breakout-v5", "ALE/Pong-v5"):
            config = presets.config_for(env_id)
            for key, value in rl_zoo.items():
                self.assertEqual(config[key], value, (env_id, key))
            # SB3's batch_size 256: 4 minibatches of single steps.
            steps = config["num_envs"] * config["rollout_length"]
            self.assertEqual(steps // config["num_minibatches"], 256)
            self.assertEqual(config["minibatch_mode"], "steps")
        # Other versions and ids are not matched by it.
        for env_id in ("ALE/Breakout-v4", "BreakoutNoFrameskip-v4", "ALE"):
            self.assertEqual(presets.config_for(env_id), presets.DEFAULTS)
        # An id's own entry wins over a pattern it matches.
        self.assertEqual(
            presets.env_config("CartPole-v1"),
            presets.ENV_CONFIGS["CartPole-v1"],
        )
        self.assertEqual(presets.env_config(None), {})

    def test_unknown_algorithm(self):
        with self.assertRaisesRegex(ValueError, "algorithm='dqn'"):
            presets.config_for("CartPole-v1", "dqn")

    def test_importing_presets_imports_no_tensorflow(self):
        result = run_python(
            "import sys, keras_gae, keras_gae.presets\n"
            "assert 'tensorflow' not in sys.modules, 'tensorflow'\n"
            "assert 'keras' not in sys.modules, 'keras'\n"
            "print(keras_gae.presets.config_for('CartPole-v1')['num_envs'])\n"
        )
        self.assertEqual(result.returncode, 0, result.stderr[-2000:])
        self.assertEqual(
            result.stdout.strip(),
            str(presets.ENV_CONFIGS["CartPole-v1"]["num_envs"]),
        )


class ResolveSettingsTest(tf.test.TestCase):
    def test_stable_baselines3_names(self):
        config = presets.config_for("CartPole-v1")
        names_and_values = (  # (SB3's name, keras_gae's, value)
            ("n_steps", "rollout_length", 16),
            ("n_envs", "num_envs", 4),
            ("n_epochs", "epochs", 3),
            ("gae_lambda", "lambda_", 0.9),
            ("ent_coef", "entropy_coef", 0.01),
            ("vf_coef", "value_coef", 0.25),
            ("clip_range", "clip_ratio", 0.1),
            ("learning_rate", "learning_rate", 1e-3),
        )
        resolved = presets.resolve_settings(
            {sb3: value for sb3, _, value in names_and_values}, config
        )
        self.assertEqual(
            resolved, {name: value for _, name, value in names_and_values}
        )

    def test_batch_size_becomes_step_minibatches(self):
        config = presets.config_for("CartPole-v1")
        resolved = presets.resolve_settings(
            dict(n_steps=16, batch_size=8), config
        )
        self.assertEqual(resolved, dict(rollout_length=16))
        config.update(resolved, num_envs=4)  # the environment's
        presets.apply_batch_size(config, 8)
        self.assertEqual(config["num_minibatches"], 4 * 16 // 8)
        self.assertEqual(config["minibatch_mode"], "steps")
        for bad in (7, 0, 8.0, True):
            with self.assertRaisesRegex(ValueError, "batch_size="):
                presets.apply_batch_size(dict(config), bad)
        with self.assertRaisesRegex(ValueError, "num_minibatches"):
            presets.resolve_settings(
                dict(batch_size=8, num_minibatches=2), config
            )

    def test_both_names_for_one_setting(self):
        with self.assertRaisesRegex(ValueError, "n_steps.*rollout_length"):
            presets.resolve_settings(
                dict(rollout_length=8, n_steps=16),
                presets.config_for("CartPole-v1"),
            )

    def test_typo_gets_a_suggestion(self):
        config = presets.config_for("CartPole-v1")
        for name, suggestion in (
            ("learning_rat", "learning_rate"),
            ("n_step", "rollout_length"),
            ("entropy_coeff", "entropy_coef"),
            ("lambda", "lambda_"),
        ):
            with self.assertRaisesRegex(
                ValueError, f"Did you mean {suggestion}.*Received: {name}="
            ):
                presets.resolve_settings({name: 1}, config)

    def test_a2c_has_no_clip(self):
        with self.assertRaisesRegex(
            ValueError, "`clip_range` is a setting of PPO.*A2C has none"
        ):
            presets.resolve_settings(
                dict(clip_range=0.1), presets.config_for("CartPole-v1", "a2c")
            )


class CheckConfigTest(tf.test.TestCase):
    def test_every_preset_passes(self):
        for env_id in [None, *presets.ENV_CONFIGS]:
            for algorithm in presets.ALGORITHMS:
                presets.check_config(presets.config_for(env_id, algorithm))

    def test_bad_values_are_named(self):
        base = presets.config_for("CartPole-v1")
        for name, value, message in (
            ("num_envs", 0, "a positive int"),
            ("epochs", 2.0, "a positive int"),
            ("epochs", True, "a positive int"),
            ("steps_per_execution", 0, "a positive int"),
            ("learning_rate", 0.0, "> 0"),
            ("learning_rate", float("nan"), "a finite number"),
            ("gamma", -0.1, ">= 0"),
            ("lambda_", 1.01, "<= 1"),
            ("clip_ratio", 0.0, "> 0"),
            ("entropy_coef", float("inf"), "a finite number"),
            ("target_return", float("nan"), "a finite number"),
            ("minibatch_mode", "row", "one of"),
            ("learning_rate_schedule", "cosine", "one of"),
            ("gae_implementation", "cuda", "one of"),
            ("normalize_rewards", 1, "True or False"),
            ("hidden_sizes", (64, 0), "a sequence of positive ints"),
            ("hidden_sizes", 64, "a sequence of positive ints"),
            ("activation", 3, "the name of a Keras activation"),
        ):
            config = dict(base, **{name: value})
            with self.assertRaisesRegex(
                ValueError, f"`{name}` must be {message}.*Received: {name}="
            ):
                presets.check_config(config)

    def test_none_turns_optional_settings_off(self):
        config = presets.config_for("CartPole-v1")
        config.update(max_grad_norm=None, target_return=None)
        presets.check_config(config)
        config["max_grad_norm"] = 0.0
        presets.check_config(config)

    def test_row_minibatches_must_divide_num_envs(self):
        config = dict(presets.config_for("CartPole-v1"), num_minibatches=7)
        with self.assertRaisesRegex(ValueError, "num_envs=32.*=7"):
            presets.check_config(config)
        presets.check_config(dict(config, minibatch_mode="steps"))
