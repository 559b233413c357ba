"""Argument checks that fail early with a message naming the argument.

Every error reads "`arg` must be <expected>. Received: arg=<value>" so that
bad input is reported before TensorFlow builds a graph around it.
"""

import numbers

import keras
import numpy as np
import tensorflow as tf


def positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")
    return int(value)


def non_negative_int(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"`{name}` must be an integer >= 0. Received: {name}={value!r}")
    return int(value)


MAX_SEED = 2**31 - 1


def choice(name, value, choices):
    """`value` if it is one of `choices`."""
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {choices}. Received: {name}={value!r}")
    return value


def seed(name, value):
    """A seed usable by TensorFlow's stateless generators: 0 <= value < 2**31."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 0 <= value <= MAX_SEED:
        raise ValueError(
            f"`{name}` must be an integer in [0, {MAX_SEED}]. Received: {name}={value!r}"
        )
    return int(value)


def _finite_real(value):
    return not isinstance(value, bool) and isinstance(value, numbers.Real) and bool(np.isfinite(value))


def positive_float(name, value):
    if not (_finite_real(value) and value > 0):
        raise ValueError(f"`{name}` must be a finite number > 0. Received: {name}={value!r}")
    return float(value)


def finite_float(name, value):
    if not _finite_real(value):
        raise ValueError(f"`{name}` must be a finite number. Received: {name}={value!r}")
    return float(value)


def non_negative_float(name, value):
    if not (_finite_real(value) and value >= 0):
        raise ValueError(f"`{name}` must be a finite number >= 0. Received: {name}={value!r}")
    return float(value)


def unit_interval(name, value):
    """Checks that `value` is a number strictly between 0 and 1."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not 0 < value < 1:
        raise ValueError(f"`{name}` must be a number in (0, 1). Received: {name}={value!r}")
    return float(value)


def component(name, value, base, names, make, latent_dim):
    """A latent component layer: `value` itself if it is a `base` instance
    over `latent_dim` dimensions, else `make(value)` for a name in `names`;
    built. `name` is the argument ("posterior", "prior")."""
    if isinstance(value, base):
        if value.latent_dim != latent_dim:
            raise ValueError(
                f"`{name}` must be over latent_dim={latent_dim} dimensions. "
                f"Received: {name}={value.name!r} with latent_dim={value.latent_dim}"
            )
        layer = value
    elif isinstance(value, str) and value in names:
        layer = make(value)
    else:
        raise ValueError(
            f"`{name}` must be one of {tuple(names)} or a `{base.__module__}.{base.__name__}`. "
            f"Received: {name}={value!r}"
        )
    if not layer.built:
        layer.build()
    return layer


def int_tuple(name, value, min_len=1):
    try:
        out = tuple(positive_int(name, v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(
            f"`{name}` must be a sequence of positive integers. Received: {name}={value!r}"
        ) from None
    if len(out) < min_len:
        raise ValueError(
            f"`{name}` must hold at least {min_len} positive integer(s). "
            f"Received: {name}={value!r}"
        )
    return out


def _shape_str(shape):
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"


_SCALE_HINT = " Scale integer images to [0, 1], e.g. `x / 255`."
_INTEGER_HINTS = {  # by the likelihood's `values`; `_SCALE_HINT` for "unit" and without a likelihood
    "binary": " Binarize integer images to {0, 1} floats, e.g. `(x > 127).astype('float32')`.",
    "8bit": " Cast 8-bit images to float32 and keep their values 0..255 (this likelihood models them).",
    "dequantized": " Cast 8-bit images to float32 and add uniform noise in [0, 1) (keras_vae.data with "
                   "`values='dequantized'` does both).",
}


def check_spec(name, shape, dtype, event_shape, integer=False, values=None):
    """Checks the static shape and dtype (floating, or integer if `integer`)
    of a batch `[batch, *event_shape]`; `values` (a likelihood's `values`)
    chooses the hint for integer images."""
    dtype = tf.as_dtype(dtype)
    if integer and not dtype.is_integer:
        raise ValueError(f"`{name}` must hold integers. Received: {name}.dtype={dtype.name}")
    if not integer and not dtype.is_floating:
        hint = _INTEGER_HINTS.get(values, _SCALE_HINT) if dtype.is_integer else ""
        raise ValueError(
            f"`{name}` must have a floating dtype (float16/32/64, bfloat16).{hint} "
            f"Received: {name}.dtype={dtype.name}"
        )
    expected = (None, *event_shape)
    shape = tuple(shape) if shape is not None else None
    if shape is None or len(shape) != len(expected):
        raise ValueError(
            f"`{name}` must have rank {len(expected)}, shape {_shape_str(expected)} "
            f"(batch first). Received: {name}.shape="
            f"{'unknown' if shape is None else _shape_str(shape)}"
        )
    wrong = [i for i, (g, w) in enumerate(zip(shape[1:], event_shape)) if g is not None and g != w]
    if wrong:
        note = " (wrong number of channels)" if len(event_shape) == 3 and wrong == [2] else ""
        raise ValueError(
            f"`{name}` must have shape {_shape_str(expected)}{note}. "
            f"Received: {name}.shape={_shape_str(shape)}"
        )


def check_values(name, x, likelihood=None):
    """Checks concrete values: finite, and inside the likelihood's support."""
    x = np.asarray(x)
    finite = np.isfinite(x)
    if not finite.all():
        bad = x[~finite]
        raise ValueError(
            f"`{name}` must contain only finite values. Received: {name} with "
            f"{bad.size} NaN/Inf values (e.g. {bad.flat[0]!r})"
        )
    if likelihood is not None:
        problem = likelihood.support_violation(x)
        if problem:
            raise ValueError(
                f"`{name}` must lie in the support {likelihood.support} of the "
                f"{type(likelihood).__name__} likelihood. Received: {name} with {problem}"
            )


def check_array(name, x, event_shape, likelihood=None):
    """Full check of an eager array-like batch (numpy, tf.Tensor, list)."""
    if isinstance(x, (str, bytes)):
        raise ValueError(f"`{name}` must be a numeric array. Received: {name}={x!r}")
    if isinstance(x, tf.Tensor):
        dtype, shape = x.dtype, x.shape.as_list()
    else:
        arr = np.asarray(x)
        if arr.dtype.kind in "USO":
            raise ValueError(
                f"`{name}` must be a numeric array. Received: {name}.dtype={arr.dtype}"
            )
        dtype, shape = arr.dtype, arr.shape
    check_spec(name, shape, dtype, event_shape, values=getattr(likelihood, "values", None))
    check_values(name, x, likelihood)


def input_part(data):
    """The inputs `x` of `(x,)`, `(x, y)` or `(x, y, sample_weight)`; `data` itself otherwise."""
    return data[0] if isinstance(data, tuple) and data else data


def check_not_empty(name, data):
    """Refuses inputs without a single example: Keras would run no step and
    return as if it had trained or evaluated. A `tf.data.Dataset` is refused
    when its cardinality is known to be 0 (its values are not read)."""
    data = input_part(data)
    if isinstance(data, tf.data.Dataset):
        if int(data.cardinality()) == 0:
            raise ValueError(f"`{name}` must yield at least one batch. Received: an empty tf.data.Dataset "
                             f"({name}.cardinality() == 0)")
        return
    if isinstance(data, (np.ndarray, tf.Tensor, list)):
        shape = tuple(data.shape) if isinstance(data, (np.ndarray, tf.Tensor)) else np.shape(data)
        if shape and shape[0] == 0:
            raise ValueError(f"`{name}` must hold at least one example. Received: {name}.shape={_shape_str(shape)}")


def check_dataset(name, data, event_shape, integer=False):
    """If `data` is a `tf.data.Dataset`, checks its element spec (rank, shape
    and dtype of the batches of inputs, never their values) and returns True;
    returns False for anything else."""
    if not isinstance(data, tf.data.Dataset):
        return False
    spec = input_part(data.element_spec)
    if not isinstance(spec, tf.TensorSpec):
        raise ValueError(
            f"`{name}` must yield one tensor of inputs per batch. Received: {name}.element_spec={data.element_spec}"
        )
    if spec.shape.rank is not None:  # unknown shapes are checked by the graph
        check_spec(name, spec.shape.as_list(), spec.dtype, event_shape, integer=integer)
    return True


def check_indices(name, indices, map_shape, num_codes):
    """Checks a batch of integer code maps `[batch, *map_shape]` with values in
    `[0, num_codes)`; returns them as an int32 tensor."""
    if isinstance(indices, (str, bytes)):
        raise ValueError(f"`{name}` must be an integer array. Received: {name}={indices!r}")
    arr = np.asarray(indices)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"`{name}` must hold integers. Received: {name}.dtype={arr.dtype}")
    check_spec(name, arr.shape, arr.dtype, map_shape, integer=True)
    if arr.size and (arr.min() < 0 or arr.max() >= num_codes):
        raise ValueError(
            f"`{name}` must lie in [0, {num_codes}). Received: {name} with values in "
            f"[{arr.min()}, {arr.max()}]"
        )
    return tf.constant(arr, tf.int32)


def conv_args(model, data_shape, filters, kernel_size, activation_name):
    """Checks the network arguments of a convolutional model named `model`;
    returns `(data_shape, filters, kernel_size, activation)` normalised."""
    data_shape = int_tuple("data_shape", data_shape)
    if len(data_shape) != 3:
        raise ValueError(
            f"`data_shape` must be (height, width, channels) for {model}. Received: data_shape={data_shape}"
        )
    return (
        data_shape,
        int_tuple("filters", filters),
        positive_int("kernel_size", kernel_size),
        activation("activation", activation_name),
    )


def activation(name, value):
    """Checks that `value` names a Keras activation."""
    try:
        keras.activations.get(value)
    except (ValueError, TypeError):
        raise ValueError(
            f"`{name}` must be the name of a Keras activation (e.g. 'relu', 'tanh'). "
            f"Received: {name}={value!r}"
        ) from None
    if not isinstance(value, str):
        raise ValueError(f"`{name}` must be an activation name (a string). Received: {name}={value!r}")
    return value
