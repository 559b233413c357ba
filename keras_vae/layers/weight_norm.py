"""Weight-normalised convolutions (Salimans & Kingma 2016) and their
data-dependent initialisation.

`WeightNormConv2D` computes a convolution (or, with `transpose=True`, a
transposed convolution) with the kernel

    w = g * v / ||v||        (one norm and one g per output channel)

plus a bias. `g` starts at `||v||`, so before any data-dependent
initialisation the layer computes exactly what a plain convolution with the
same initial kernel would. `initialize_from_data(network, x)` runs `network`
once on a batch, eagerly, and sets every such layer's `g` and bias so that its
outputs on that batch have zero mean and standard deviation `init_scale` (1
unless set) per channel, layer by
layer in the order the network calls them (each sees the already
initialised layers before it).
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_vae")
class WeightNormConv2D(keras.layers.Layer):
    """A weight-normalised `Conv2D` (or `Conv2DTranspose` with `transpose=True`).

    Args:
        filters: output channels.
        kernel_size: square kernel size.
        strides: stride (2 halves, or with `transpose` doubles, the map).
        transpose: a transposed convolution instead of a convolution.
        init_scale: the standard deviation per channel that
            `initialize_from_data` gives the outputs (0.1 on a residual
            branch keeps each block close to the identity at the start).
        **kwargs: `keras.layers.Layer` arguments (`name`, `dtype`).
    """

    def __init__(self, filters, kernel_size=3, strides=1, transpose=False, init_scale=1.0, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.kernel_size, self.strides = int(filters), int(kernel_size), int(strides)
        self.transpose = bool(transpose)
        self.init_scale = float(init_scale)
        self._init_pending = False  # set by `initialize_from_data`

    def build(self, input_shape):
        channels = int(input_shape[-1])
        k = self.kernel_size
        # Conv2D kernels are [k, k, in, out]; Conv2DTranspose kernels [k, k, out, in].
        shape = (k, k, self.filters, channels) if self.transpose else (k, k, channels, self.filters)
        self._norm_axes = (0, 1, 3) if self.transpose else (0, 1, 2)
        self.v = self.add_weight(name="v", shape=shape, initializer="glorot_uniform")
        self.g = self.add_weight(name="g", shape=(self.filters,),
                                 initializer=lambda shape, dtype: ops.cast(self._norm(self.v), dtype))
        self.bias = self.add_weight(name="bias", shape=(self.filters,), initializer="zeros")

    def _norm(self, v):
        return ops.sqrt(ops.sum(ops.square(v), axis=self._norm_axes))

    def _direction(self, inputs):
        """The convolution with the unit-norm kernel v / ||v||, no bias."""
        v = ops.cast(self.v, self.compute_dtype)
        norm = ops.cast(self._norm(self.v), self.compute_dtype)
        shape = (1, 1, -1, 1) if self.transpose else (1, 1, 1, -1)
        kernel = v / ops.reshape(norm, shape)
        if self.transpose:
            return ops.conv_transpose(inputs, kernel, self.strides, padding="same")
        return ops.conv(inputs, kernel, self.strides, padding="same")

    def call(self, inputs):
        t = self._direction(inputs)
        if self._init_pending:
            mean, variance = ops.moments(ops.cast(t, "float32"), axes=(0, 1, 2))
            scale = self.init_scale / ops.sqrt(variance + 1e-6)
            self.g.assign(ops.cast(scale, self.g.dtype))
            self.bias.assign(ops.cast(-mean * scale, self.bias.dtype))
            self._init_pending = False
        return t * ops.cast(self.g, t.dtype) + ops.cast(self.bias, t.dtype)

    def compute_output_shape(self, input_shape):
        batch, height, width, _ = input_shape
        if self.transpose:
            scale = lambda n: None if n is None else n * self.strides  # noqa: E731
        else:
            scale = lambda n: None if n is None else -(-n // self.strides)  # noqa: E731
        return (batch, scale(height), scale(width), self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "strides": self.strides, "transpose": self.transpose, "init_scale": self.init_scale}


def has_weight_norm(network):
    """Whether `network` holds a `WeightNormConv2D`."""
    return any(isinstance(layer, WeightNormConv2D) for layer in network._flatten_layers())


def initialize_from_data(network, x):
    """Data-dependent initialisation of every `WeightNormConv2D` in
    `network`: one eager call on the batch `x`; returns the network's output.
    Layers other than `WeightNormConv2D` are left as they are."""
    layers = [layer for layer in network._flatten_layers() if isinstance(layer, WeightNormConv2D)]
    for layer in layers:
        layer._init_pending = True
    try:
        outputs = network(x, training=False)
    finally:
        pending = [layer.name for layer in layers if layer._init_pending]
        for layer in layers:
            layer._init_pending = False
    if pending:
        raise ValueError(f"`network` did not call these weight-normalised layers on `x`: {pending}")
    return outputs
