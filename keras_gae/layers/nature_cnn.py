"""The Nature-CNN image encoder of DQN and PPO's Atari experiments."""

from __future__ import annotations

import math
from typing import Any
from typing import Optional

import keras
from keras import ops

DATA_FORMATS = ("channels_first", "channels_last")

# (filters, kernel size, stride) of the three convolutions (Mnih et al.
# 2015, "Human-level control through deep reinforcement learning").
_CONVOLUTIONS = ((32, 8, 4), (64, 4, 2), (64, 3, 1))


def image_data_format(shape: Any) -> str:
    """Where the channels of an image of `shape` `[..., A, B, C]` are.

    The channel axis is the smaller of the first and last image axes: a
    stack of 4 frames of 84x84, as gymnasium's `FrameStackObservation`
    gives it, is `(4, 84, 84)`, channels first; an RGB frame
    `(210, 160, 3)` is channels last. A tie is channels last (Keras'
    default).

    Args:
      shape: the image shape with any leading batch axes; its last three
        entries must be known.

    Returns:
      "channels_first" or "channels_last".

    Raises:
      ValueError: fewer than 3 axes, or unknown image axes.
    """
    shape = tuple(shape)
    if len(shape) < 3 or any(size is None for size in shape[-3:]):
        raise ValueError(
            "An image needs three known axes (height, width and channels, "
            f"in either order) after any batch axes. Received: shape={shape}"
        )
    return "channels_first" if shape[-3] < shape[-1] else "channels_last"


@keras.saving.register_keras_serializable(package="keras_gae")
class NatureCNN(keras.layers.Layer):
    r"""Images to features: the Nature CNN (Mnih et al. 2015).

    The encoder DQN and PPO (Schulman et al. 2017, arXiv:1707.06347) use
    on Atari. For images x `[..., H, W, C]` (or `[..., C, H, W]`) of
    pixel values in [0, 255], uint8 or float:

        h = x / 255                       (cast inside the layer)
        h = relu(conv(h, 32 filters, 8x8, stride 4))
        h = relu(conv(h, 64 filters, 4x4, stride 2))
        h = relu(conv(h, 64 filters, 3x3, stride 1))
        y = relu(dense(flatten(h), units))

    "valid" padding; every kernel orthogonal with gain sqrt(2) and every
    bias zero, as the PPO paper's Atari networks. The pixels stay uint8
    until this layer: a rollout of frames costs a quarter of its float32
    size. Channels-first inputs are transposed to channels last inside (the
    layout TensorFlow's CPU convolutions support). Any number of leading
    batch axes is allowed (`[B, T, 4, 84, 84]` from a rollout batch).

    Args:
      units: the size of the output features (512 in the paper).
      data_format: "channels_first", "channels_last", or None: detected
        from the input shape when the layer is built (`image_data_format`:
        the smaller of the first and last image axes holds the channels).
      **kwargs: `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Call args:
      images: `[..., H, W, C]` or `[..., C, H, W]`, uint8 or float, values
        in [0, 255].

    Returns:
      `[..., units]` float features, ReLU'ed.

    Raises:
      ValueError: `units` not a positive int, an unknown `data_format`,
        an input with fewer than 3 axes, or an image smaller than the
        convolutions' 36x36 receptive field.

    Example:

    ```python
    import numpy as np
    import keras_gae

    layer = keras_gae.layers.NatureCNN(units=16)
    frames = np.zeros((2, 4, 84, 84), np.uint8)  # FrameStackObservation(4)
    features = layer(frames)  # [2, 16], float32
    layer.data_format  # "channels_first", detected
    ```
    """

    def __init__(
        self,
        units: int = 512,
        data_format: Optional[str] = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if isinstance(units, bool) or not isinstance(units, int) or units < 1:
            raise ValueError(
                f"`units` must be a positive int. Received: units={units!r}"
            )
        if data_format is not None and data_format not in DATA_FORMATS:
            raise ValueError(
                f"`data_format` must be one of {DATA_FORMATS} or None "
                f"(detected from the input shape). "
                f"Received: data_format={data_format!r}"
            )
        self.units = units
        self.data_format = data_format
        initializer = keras.initializers.Orthogonal(gain=math.sqrt(2.0))
        self.convolutions = [
            keras.layers.Conv2D(
                filters,
                size,
                strides=stride,
                activation="relu",
                kernel_initializer=initializer,
                bias_initializer="zeros",
                dtype=self.dtype_policy,
                name=f"conv_{index}",
            )
            for index, (filters, size, stride) in enumerate(_CONVOLUTIONS)
        ]
        self.dense = keras.layers.Dense(
            units,
            activation="relu",
            kernel_initializer=initializer,
            bias_initializer="zeros",
            dtype=self.dtype_policy,
            name="dense",
        )

    def _channels_last_shape(self, input_shape: Any) -> tuple:
        image = tuple(input_shape[-3:])
        if self.data_format == "channels_first":
            image = image[1:] + image[:1]
        return image

    def build(self, input_shape: Any) -> None:
        input_shape = tuple(input_shape)
        detected = image_data_format(input_shape)
        if self.data_format is None:
            self.data_format = detected
        height, width, channels = self._channels_last_shape(input_shape)
        # The output side after the three "valid" convolutions.
        out_height, out_width = height, width
        for _, size, stride in _CONVOLUTIONS:
            out_height = (out_height - size) // stride + 1
            out_width = (out_width - size) // stride + 1
        if out_height < 1 or out_width < 1:
            raise ValueError(
                "The images are too small for the Nature CNN, whose "
                "convolutions need at least 36x36 pixels. "
                f"Received: input_shape={input_shape} ({self.data_format})"
            )
        shape = (None, height, width, channels)
        for convolution in self.convolutions:
            convolution.build(shape)
            shape = convolution.compute_output_shape(shape)
        self.dense.build((None, out_height * out_width * shape[-1]))
        self.built = True

    def call(self, images: Any) -> Any:
        leading = ops.shape(images)[:-3]
        images = ops.cast(images, self.compute_dtype) * (1.0 / 255.0)
        images = ops.reshape(images, (-1,) + tuple(images.shape[-3:]))
        if self.data_format == "channels_first":
            images = ops.transpose(images, (0, 2, 3, 1))
        features = images
        for convolution in self.convolutions:
            features = convolution(features)
        features = ops.reshape(features, (ops.shape(features)[0], -1))
        features = self.dense(features)
        return ops.reshape(features, tuple(leading) + (self.units,))

    def compute_output_shape(self, input_shape: Any) -> tuple:
        return tuple(input_shape[:-3]) + (self.units,)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"units": self.units, "data_format": self.data_format})
        return config
