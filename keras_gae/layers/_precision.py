"""Precision rules shared by the layers (mixed-precision policies).

Discounted sums, sums of squares and probability ratios lose too many bits
in float16/bfloat16. The statistics layers therefore default to a float32
dtype policy whatever the global policy is, and refuse a half-precision one;
the policy heads may compute in half precision but hand out float32 params.
"""

from __future__ import annotations

import keras

HALF_DTYPES = ("float16", "bfloat16")


def float32_by_default(kwargs: dict) -> dict:
    """Layer kwargs with `dtype="float32"` unless a dtype was given.

    A layer built with an explicit float32 policy keeps computing in float32
    under a global `mixed_float16` / `mixed_bfloat16` policy; Keras casts its
    floating inputs to float32.
    """
    if kwargs.get("dtype") is None:
        kwargs = dict(kwargs, dtype="float32")
    return kwargs


def check_not_half(layer: keras.layers.Layer, reason: str) -> None:
    """Refuses a layer whose dtype policy computes in half precision."""
    if layer.compute_dtype in HALF_DTYPES:
        raise ValueError(
            f"{type(layer).__name__} computes in float32 or float64; "
            f"{reason} loses too many bits in half precision. Leave "
            "`dtype` unset (float32) under mixed precision. "
            f"Received: dtype={layer.dtype_policy.name!r}"
        )
