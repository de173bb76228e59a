"""NatureCNN: layout detection, uint8 input, a NumPy reference, fit."""

import os

import keras
import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from keras_gae.layers.nature_cnn import NatureCNN
from keras_gae.layers.nature_cnn import image_data_format


def _conv_reference(images, kernel, bias, stride):
    """A "valid" NHWC convolution with ReLU, float64, by loops over taps."""
    size = kernel.shape[0]
    batch, height, width, _ = images.shape
    out_h = (height - size) // stride + 1
    out_w = (width - size) // stride + 1
    out = np.zeros((batch, out_h, out_w, kernel.shape[-1]))
    for i in range(size):
        for j in range(size):
            patch = images[
                :,
                i : i + stride * (out_h - 1) + 1 : stride,
                j : j + stride * (out_w - 1) + 1 : stride,
            ]
            out += np.einsum("bhwc,cf->bhwf", patch, kernel[i, j])
    return np.maximum(out + bias, 0.0)


def _reference(layer, images_nhwc):
    features = images_nhwc.astype(np.float64) / 255.0
    for convolution, stride in zip(layer.convolutions, (4, 2, 1)):
        kernel, bias = (np.asarray(w, np.float64) for w in convolution.weights)
        features = _conv_reference(features, kernel, bias, stride)
    features = features.reshape(features.shape[0], -1)
    kernel, bias = (np.asarray(w, np.float64) for w in layer.dense.weights)
    return np.maximum(features @ kernel + bias, 0.0)


class NatureCNNTest(tf.test.TestCase, parameterized.TestCase):
    def _frames(self, shape, seed=0):
        return np.random.default_rng(seed).integers(
            0, 256, size=shape, dtype=np.uint8
        )

    @parameterized.named_parameters(
        ("frame_stack", (4, 84, 84), "channels_first"),
        ("rgb", (210, 160, 3), "channels_last"),
        ("batched_stack", (8, 2, 4, 84, 84), "channels_first"),
        ("stack_last", (84, 84, 4), "channels_last"),
        ("tie", (3, 40, 3), "channels_last"),
    )
    def test_detects_layout(self, shape, expected):
        self.assertEqual(image_data_format(shape), expected)

    def test_against_numpy_reference_in_both_layouts(self):
        first = NatureCNN(units=8)
        frames = self._frames((3, 4, 44, 40))
        output = first(frames)
        self.assertEqual(first.data_format, "channels_first")
        self.assertEqual(output.dtype, "float32")
        nhwc = np.transpose(frames, (0, 2, 3, 1))
        self.assertAllClose(output, _reference(first, nhwc), atol=1e-4)
        # The same weights on the channels-last frames give the same.
        last = NatureCNN(units=8)
        last.build(nhwc.shape)
        last.set_weights(first.get_weights())
        self.assertEqual(last.data_format, "channels_last")
        self.assertAllClose(last(nhwc), output, atol=1e-5)

    def test_uint8_and_float_pixels_agree(self):
        layer = NatureCNN(units=16)
        frames = self._frames((2, 4, 84, 84))
        self.assertAllClose(
            layer(frames), layer(frames.astype(np.float32)), atol=1e-6
        )

    def test_leading_axes(self):
        layer = NatureCNN(units=8)
        frames = self._frames((2, 3, 4, 36, 36))
        output = layer(frames)
        self.assertEqual(tuple(output.shape), (2, 3, 8))
        self.assertAllClose(
            tf.reshape(output, [6, 8]), layer(frames.reshape(6, 4, 36, 36))
        )

    def test_initialization(self):
        layer = NatureCNN(units=512)
        layer.build((None, 4, 84, 84))
        kernel = np.asarray(layer.dense.kernel)
        # An orthogonal matrix of gain sqrt(2): K^T K = 2 I (3136 > 512).
        self.assertEqual(kernel.shape, (3136, 512))
        self.assertAllClose(kernel.T @ kernel, 2.0 * np.eye(512), atol=1e-4)
        for convolution in layer.convolutions:
            self.assertAllEqual(
                convolution.bias, np.zeros_like(convolution.bias)
            )

    def test_get_config_round_trip(self):
        layer = NatureCNN(units=32, name="encoder")
        frames = self._frames((2, 4, 40, 40))
        output = layer(frames)
        config = layer.get_config()
        self.assertEqual(config["units"], 32)
        self.assertEqual(config["data_format"], "channels_first")
        restored = NatureCNN.from_config(config)
        restored.build(frames.shape)
        restored.set_weights(layer.get_weights())
        self.assertAllClose(restored(frames), output)
        serialized = keras.saving.serialize_keras_object(layer)
        self.assertEqual(serialized["registered_name"], "keras_gae>NatureCNN")
        self.assertIsInstance(
            keras.saving.deserialize_keras_object(serialized), NatureCNN
        )

    def test_model_fit_and_keras_file(self):
        inputs = keras.Input((4, 40, 40), dtype="uint8")
        outputs = keras.layers.Dense(1)(NatureCNN(units=16)(inputs))
        model = keras.Model(inputs, outputs)
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
        frames = self._frames((16, 4, 40, 40))
        targets = np.linspace(-1.0, 1.0, 16, dtype=np.float32)[:, None]
        before = model.evaluate(frames, targets, verbose=0)
        model.fit(frames, targets, epochs=5, batch_size=8, verbose=0)
        self.assertLess(model.evaluate(frames, targets, verbose=0), before)
        path = os.path.join(self.get_temp_dir(), "nature_cnn.keras")
        model.save(path)
        restored = keras.saving.load_model(path)
        self.assertAllClose(restored(frames), model(frames), atol=1e-5)

    @parameterized.named_parameters(
        ("zero_units", {"units": 0}, "units"),
        ("bool_units", {"units": True}, "units"),
        ("data_format", {"data_format": "NCHW"}, "data_format"),
    )
    def test_bad_arguments(self, kwargs, name):
        with self.assertRaisesRegex(ValueError, f"`{name}`.*Received"):
            NatureCNN(**kwargs)

    def test_bad_inputs(self):
        with self.assertRaisesRegex(ValueError, "three known axes"):
            NatureCNN(units=4)(np.zeros((2, 84), np.uint8))
        with self.assertRaisesRegex(ValueError, "36x36"):
            NatureCNN(units=4)(np.zeros((1, 4, 30, 30), np.uint8))


if __name__ == "__main__":
    tf.test.main()
