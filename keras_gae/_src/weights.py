"""Which weights of a model hold NaN or Inf (for export and saves)."""

from __future__ import annotations

from typing import List

import keras
import numpy as np


def non_finite_weights(model: keras.Model) -> List[str]:
    """The paths of `model`'s float weights that hold NaN or Inf."""
    return [
        variable.path
        for variable in model.weights
        if keras.backend.is_float_dtype(variable.dtype)
        and not np.all(np.isfinite(variable.numpy()))
    ]


def describe(paths: List[str]) -> str:
    """The first few paths, for an error message."""
    return f"{paths[:5]}{' ...' if len(paths) > 5 else ''}"
