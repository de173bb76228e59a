"""The argument checks of keras_gae, one import for every package.

Python arguments (hyperparameters, options, ids) are checked in
`_argument_checks`, tensors (dtype, rank, shape, flags and masks, value
ranges, numerics) in `_tensor_checks`; both raise errors that name the
argument and end with `Received: name=...`, the Keras convention. Callers
write `from keras_gae.ops import _checks` and `_checks.check_float(...)`.
"""

from keras_gae.ops._argument_checks import check_bool
from keras_gae.ops._argument_checks import check_float
from keras_gae.ops._argument_checks import check_index
from keras_gae.ops._argument_checks import check_int
from keras_gae.ops._argument_checks import check_kl_coef
from keras_gae.ops._argument_checks import check_option
from keras_gae.ops._argument_checks import check_positive_int
from keras_gae.ops._argument_checks import check_required
from keras_gae.ops._tensor_checks import check_broadcastable
from keras_gae.ops._tensor_checks import check_numerics
from keras_gae.ops._tensor_checks import check_rank
from keras_gae.ops._tensor_checks import check_same_shape
from keras_gae.ops._tensor_checks import check_unit_interval
from keras_gae.ops._tensor_checks import compute_dtype
from keras_gae.ops._tensor_checks import convert_batch_vector
from keras_gae.ops._tensor_checks import convert_flag
from keras_gae.ops._tensor_checks import convert_float
from keras_gae.ops._tensor_checks import convert_mask
from keras_gae.ops._tensor_checks import convert_scalar_parameter
from keras_gae.ops._tensor_checks import describe
from keras_gae.ops._tensor_checks import numerics_checked

__all__ = [
    "check_bool",
    "check_broadcastable",
    "check_float",
    "check_index",
    "check_int",
    "check_kl_coef",
    "check_numerics",
    "check_option",
    "check_positive_int",
    "check_rank",
    "check_required",
    "check_same_shape",
    "check_unit_interval",
    "compute_dtype",
    "convert_batch_vector",
    "convert_flag",
    "convert_float",
    "convert_mask",
    "convert_scalar_parameter",
    "describe",
    "numerics_checked",
]
