"""CausalLMPolicy's LoRA options: alpha and the adapted layers."""

import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from keras_gae import lm
from keras_gae._src import private_apis
from tests.lm import keras_hub_models as khm

TOKENS = np.array([[1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12]], np.int32)


def adapted_layers(causal_lm):
    return [
        layer
        for layer in private_apis.flatten_layers(causal_lm.backbone)
        if getattr(layer, "lora_enabled", False)
    ]


class LoRATest(tf.test.TestCase, parameterized.TestCase):
    @parameterized.named_parameters(
        ("default_alpha", None, None, 1.0),
        ("alpha", 12.0, None, 3.0),
        ("targets", 2.0, ["query", "key"], 0.5),
    )
    def test_logits_equal_merged_kernels(self, alpha, targets, scale):
        rank = 4
        policy = lm.CausalLMPolicy(
            khm.gpt2(seed=2),
            value_head=None,
            lora_rank=rank,
            lora_alpha=alpha,
            lora_target_names=targets,
        )
        rng = np.random.default_rng(0)
        merged = khm.gpt2(seed=2)  # the same base weights, no adapters
        by_path = {w.path: w for w in merged.backbone.weights}
        layers = adapted_layers(policy.causal_lm)
        self.assertEqual(
            sorted({layer.name for layer in layers}),
            sorted(targets or ["query", "value"]),
        )
        for layer in layers:
            a = rng.normal(size=layer.lora_kernel_a.shape).astype(np.float32)
            b = rng.normal(size=layer.lora_kernel_b.shape).astype(np.float32)
            layer.lora_kernel_a.assign(a)
            layer.lora_kernel_b.assign(b)
            # The reference: kernel + (alpha / rank) * A @ B, written into
            # the plain copy.
            base = layer._kernel.numpy().astype(np.float64)
            delta = np.tensordot(a, b, axes=[[-1], [0]])
            target = by_path[layer._kernel.path]
            target.assign((base + scale * delta).astype(np.float32))
        expected = khm.full_logits(merged, TOKENS)
        logits, _ = policy(TOKENS)
        self.assertAllClose(logits, expected, atol=2e-4, rtol=1e-4)
        for variable in policy.causal_lm.backbone.trainable_weights:
            self.assertIn("lora_kernel", variable.path)

    def test_get_config_keeps_the_options(self):
        policy = lm.CausalLMPolicy(
            khm.gpt2(),
            value_head=None,
            lora_rank=2,
            lora_alpha=8.0,
            lora_target_names=["value"],
        )
        config = policy.get_config()
        self.assertEqual(config["lora_alpha"], 8.0)
        self.assertEqual(config["lora_target_names"], ["value"])

    @parameterized.named_parameters(
        ("unknown_name", dict(lora_target_names=["qkv"]), ValueError),
        ("empty", dict(lora_target_names=[]), ValueError),
        ("one_string", dict(lora_target_names="query"), TypeError),
        ("alpha", dict(lora_alpha=0.0), ValueError),
    )
    def test_bad_options(self, override, error):
        name = next(iter(override))
        with self.assertRaisesRegex(error, f"{name}.*Received: {name}="):
            lm.CausalLMPolicy(
                khm.gpt2(), value_head=None, lora_rank=2, **override
            )

    def test_options_need_a_rank(self):
        with self.assertRaisesRegex(ValueError, "need `lora_rank`"):
            lm.CausalLMPolicy(khm.gpt2(), value_head=None, lora_alpha=4.0)
