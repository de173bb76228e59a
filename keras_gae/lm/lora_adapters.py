"""LoRA adapters of a keras-hub backbone: turned on, frozen around, off.

Keras' LoRA layers (Dense, EinsumDense, Embedding) add
`(lora_alpha / lora_rank) * lora_kernel_a @ lora_kernel_b` to their kernel
while `lora_enabled`; keras-hub's `Backbone.enable_lora` turns them on by
layer name. `CausalLMPolicy(lora_rank=...)` enables them with
`enable_adapters`, and the frozen reference of `CausalLMPPOModel` is the
same network run inside `lora_disabled`.
"""

from __future__ import annotations

import contextlib
from typing import Any
from typing import Optional

import keras

from keras_gae._src import private_apis
from keras_gae.ops import _checks


@contextlib.contextmanager
def lora_disabled(layer: keras.layers.Layer):
    """Runs `layer` with its LoRA adapters off (the base weights alone).

    Keras' LoRA layers (Dense, EinsumDense, Embedding) add
    `lora_kernel_a @ lora_kernel_b` to their kernel when `lora_enabled`;
    the flag is read when the layer runs, so a pass (or a trace) inside
    this context is the network without adapters: no second copy.
    """
    switched = [
        sublayer
        for sublayer in private_apis.flatten_layers(layer)
        if getattr(sublayer, "lora_enabled", False)
    ]
    for sublayer in switched:
        sublayer.lora_enabled = False
    try:
        yield bool(switched)
    finally:
        for sublayer in switched:
            sublayer.lora_enabled = True


def has_lora(layer: keras.layers.Layer) -> bool:
    """Whether any layer inside `layer` has its LoRA adapters on."""
    return any(
        getattr(sublayer, "lora_enabled", False)
        for sublayer in private_apis.flatten_layers(layer)
    )


def check_lora_settings(
    backbone: Any, rank: int, alpha: Any, target_names: Any
) -> tuple:
    """Checked `(lora_alpha, lora_target_names)`, both filled in."""
    alpha = _checks.check_float(
        alpha, "lora_alpha", minimum=0.0, inclusive=False, allow_none=True
    )
    if target_names is None:
        return (float(rank) if alpha is None else alpha), None
    if isinstance(target_names, str) or not all(
        isinstance(name, str) for name in target_names
    ):
        raise TypeError(
            "`lora_target_names` must be a list of layer names. "
            f"Received: lora_target_names={target_names!r}"
        )
    # keras-hub's enable_lora adapts the layers with weights of these names.
    names = {
        layer.name
        for layer in private_apis.flatten_layers(backbone)
        if layer is not backbone and layer.weights
    }
    unknown = sorted(set(target_names) - names)
    if unknown or not target_names:
        raise ValueError(
            f"`lora_target_names` {unknown or '[]'} name no layer of the "
            f"backbone; its layers with weights are {sorted(names)}. "
            f"Received: lora_target_names={target_names!r}"
        )
    return (float(rank) if alpha is None else alpha), list(target_names)


def enable_adapters(
    backbone: Any,
    rank: int,
    alpha: float,
    target_names: Optional[list],
) -> None:
    """Adds rank-`rank` adapters scaled by `alpha / rank` to `backbone`
    (checked settings) and freezes every other backbone weight."""
    backbone.enable_lora(rank, target_layer_names=target_names)
    for sublayer in private_apis.flatten_layers(backbone):
        if getattr(sublayer, "lora_enabled", False):
            # keras-hub's enable_lora takes no alpha; Keras' layers read
            # this attribute (their enable_lora's argument) at every call.
            sublayer.lora_alpha = alpha
    # keras-hub freezes the adapted kernels only; biases and norms would
    # train too, and the network with adapters off would no longer be the
    # pretrained reference.
    for variable in backbone.trainable_weights:
        if "lora_kernel" not in variable.path:
            variable.trainable = False
