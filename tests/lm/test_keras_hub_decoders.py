"""keras-hub's decoder-block attributes that keras_gae's cached step reads.

`keras_gae/lm/_keras_hub_decoders.py` reads keras-hub sublayers by name
(most are private); a rename would silently send decoding back to
keras-hub's slower `call_with_cache`. These tests fail naming the
attribute instead.
"""

import types
from unittest import mock

import tensorflow as tf
from absl.testing import parameterized

from keras_gae.lm import _keras_hub_decoders
from keras_gae.lm import kv_cache
from tests.lm import keras_hub_models as khm

FAMILY = {
    "gpt2": _keras_hub_decoders.GPT2Family,
    "llama": _keras_hub_decoders.LlamaFamily,
    "gemma": _keras_hub_decoders.GemmaFamily,
}


class KerasHubDecoderAttributesTest(tf.test.TestCase, parameterized.TestCase):
    @parameterized.parameters("gpt2", "llama", "gemma")
    def test_every_attribute_read_exists(self, name):
        backbone = khm.BUILDERS[name]().backbone
        family = FAMILY[name]
        missing = family.missing_attributes(backbone)
        self.assertEqual(
            missing,
            [],
            f"keras-hub renamed {missing} of {type(backbone).__name__}: "
            "update keras_gae/lm/_keras_hub_decoders.py",
        )
        self.assertIsInstance(
            kv_cache.decoder_family(khm.BUILDERS[name]()), family
        )

    def test_a_renamed_attribute_is_named_and_decoding_falls_back(self):
        causal_lm = khm.gpt2()
        gpt2 = _keras_hub_decoders.GPT2Family
        blocks = causal_lm.backbone.transformer_layers
        renamed = types.SimpleNamespace(
            **{n: getattr(blocks[1], n) for n in gpt2.names}
        )
        del renamed._feedforward_layer_norm
        backbone = types.SimpleNamespace(
            transformer_layers=[blocks[0], renamed]
        )
        self.assertEqual(
            gpt2.missing_attributes(backbone),
            ["block 1: _feedforward_layer_norm"],
        )
        with mock.patch.object(gpt2, "names", gpt2.names + ("_renamed",)):
            self.assertIsNone(kv_cache.decoder_family(causal_lm))
            self.assertEqual(
                gpt2.missing_attributes(causal_lm.backbone),
                ["block 0: _renamed", "block 1: _renamed"],
            )
        self.assertIsNotNone(kv_cache.decoder_family(causal_lm))


if __name__ == "__main__":
    tf.test.main()
