"""A masked autoregressive network (MADE, Germain et al. 2015) as a Keras 3 layer.

`tfp.bijectors.AutoregressiveNetwork` is a tf-keras layer and cannot be a
sub-layer of a Keras 3 model (its variables would not be tracked, trained or
saved). `MaskedAutoregressiveNetwork` is the same idea written for Keras 3:
dense layers whose kernels are multiplied by fixed binary masks so that
output `i` depends only on inputs `0 .. i-1` (and on an optional context
vector, which every layer sees unmasked). Its `shift_and_log_scale`
has the signature `tfp.bijectors.MaskedAutoregressiveFlow` expects.
"""

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from keras_vae import validation

tfb = tfp.bijectors


def once_per_input(network, context=None):
    """`z -> network(z, context)`, computed once for the last input: a bijector
    asks twice for the same input (the map, then its log-det-Jacobian)."""
    last = {}

    def call(z):
        if last.get("input") is not z:
            last.update(input=z, output=network(z, context) if context is not None else network(z))
        return last["output"]

    return call


def flow(steps, event_size):
    """A `tfb.Chain` applying the bijectors `steps` in turn (forward), the
    order of the `event_size` dimensions reversed between consecutive steps,
    so that every dimension is conditioned on every other one somewhere."""
    chain = []
    for i, step in enumerate(steps):
        if i:
            chain.append(tfb.Permute(list(range(event_size))[::-1]))
        chain.append(step)
    return tfb.Chain(chain[::-1])  # a Chain applies its last bijector first


def masks(event_size, hidden_units):
    """The MADE masks for inputs in their natural order.

    Input `i` has degree `i + 1`; the units of every hidden layer get degrees
    `1 .. event_size - 1` in turn; a unit sees a unit of the layer below when
    its degree is at least the lower unit's, and output `i` (degree `i + 1`)
    sees a hidden unit of degree strictly below `i + 1`. Returns float32 numpy
    masks `[fan_in, fan_out]`, one per kernel (the last one to the outputs).
    """
    input_degrees = np.arange(1, event_size + 1)
    degrees = [input_degrees]
    for units in hidden_units:
        degrees.append(np.arange(units) % max(event_size - 1, 1) + 1)
    result = [(d_out[None, :] >= d_in[:, None]).astype("float32") for d_in, d_out in zip(degrees, degrees[1:])]
    result.append((input_degrees[None, :] > degrees[-1][:, None]).astype("float32"))
    return result


@keras.saving.register_keras_serializable(package="keras_vae")
class MaskedAutoregressiveNetwork(keras.layers.Layer):
    """An autoregressive network over `event_size` inputs, with `params`
    outputs per input and an optional context.

    `call(x, context=None)` maps `[..., event_size]` (and `context`
    `[..., context_size]`, broadcast against `x`'s leading dimensions) to
    `[..., event_size, params]`; output `[..., i, :]` depends only on
    `x[..., :i]` and the context. The output layer starts at zero, so a flow
    built on it starts where its parameterisation puts zero outputs.

    Args:
        event_size: number of inputs (>= 2).
        hidden_units: widths of the masked hidden layers (at least one).
        params: outputs per input (2: a shift and a log-scale).
        context_size: width of the context vector (0: none).
        activation: activation of the hidden layers.
    """

    def __init__(self, event_size, hidden_units=(64, 64), params=2, context_size=0, activation="elu", **kwargs):
        kwargs["dtype"] = "float32"  # flows stay float32 under mixed precision
        super().__init__(**kwargs)
        self.event_size = validation.positive_int("event_size", event_size)
        if self.event_size < 2:
            raise ValueError(
                "`event_size` must be >= 2 for an autoregressive network (with one dimension there is nothing "
                f"to condition on). Received: event_size={event_size!r}"
            )
        self.hidden_units = validation.int_tuple("hidden_units", hidden_units)
        self.params = validation.positive_int("params", params)
        self.context_size = validation.non_negative_int("context_size", context_size)
        self.activation = validation.activation("activation", activation)
        self._activation = keras.activations.get(self.activation)
        self._masks = masks(self.event_size, self.hidden_units)
        # The output mask repeated for each parameter: columns are [input i, param p], i-major.
        self._masks[-1] = np.repeat(self._masks[-1], self.params, axis=1)

    def build(self, input_shape=None):
        widths = (self.event_size, *self.hidden_units, self.event_size * self.params)
        self.kernels, self.biases = [], []
        for i, (fan_in, fan_out) in enumerate(zip(widths, widths[1:])):
            last = i == len(widths) - 2
            init = "zeros" if last else "glorot_uniform"
            self.kernels.append(self.add_weight(name=f"kernel_{i}", shape=(fan_in, fan_out), initializer=init))
            self.biases.append(self.add_weight(name=f"bias_{i}", shape=(fan_out,), initializer="zeros"))
        # The context enters every hidden layer and the outputs (output 0 sees no input at all).
        widths = (*self.hidden_units, self.event_size * self.params)
        self.context_kernels = [
            self.add_weight(name=f"context_kernel_{i}", shape=(self.context_size, units),
                            initializer="zeros" if i == len(widths) - 1 else "glorot_uniform")
            for i, units in enumerate(widths)
        ] if self.context_size else []
        self.built = True

    def call(self, x, context=None):
        if self.context_size and context is None:
            raise ValueError(
                f"This network was built with context_size={self.context_size} and needs a `context`. "
                "Received: context=None"
            )
        h = tf.cast(x, tf.float32)
        for i, (kernel, bias) in enumerate(zip(self.kernels, self.biases)):
            h = tf.matmul(h, kernel * self._masks[i]) + bias
            if self.context_size:
                h += tf.matmul(tf.cast(context, tf.float32), self.context_kernels[i])
            if i < len(self.hidden_units):
                h = self._activation(h)
        return tf.reshape(h, tf.concat([tf.shape(h)[:-1], [self.event_size, self.params]], 0))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.event_size, self.params)

    def get_config(self):
        config = super().get_config()
        config.pop("dtype", None)
        config.update(
            event_size=self.event_size,
            hidden_units=self.hidden_units,
            params=self.params,
            context_size=self.context_size,
            activation=self.activation,
        )
        return config
