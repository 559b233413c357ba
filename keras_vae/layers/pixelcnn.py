"""Masked convolutions and the gated PixelCNN block (van den Oord et al. 2016,
"Conditional Image Generation with PixelCNN Decoders").

A gated block carries two stacks over a map in raster order:

- the vertical stack sees only rows strictly above the current one: its first
  convolution masks the centre row out (mask "A"), later ones keep it (mask
  "B"), since their input already excludes the current row;
- the horizontal stack sees the current row strictly left of the current
  position ("A") or up to and including it ("B"), plus the vertical stack.

So the horizontal output at (i, j) depends on the input at (i', j') only for
(i', j') before (i, j) in raster order, and the receptive field has no blind
spot. Gating: `tanh(a) * sigmoid(b)` over the two halves of the channels.
"""

import keras
import numpy as np
from keras import ops

from keras_vae import validation

STACKS = ("vertical", "horizontal")
MASK_TYPES = ("A", "B")


def causal_mask(kernel_size, stack, mask_type):
    """The `[kh, kw, 1, 1]` 0/1 mask of a `stack` convolution of `mask_type`."""
    c = kernel_size // 2
    if stack == "vertical":
        mask = np.zeros((kernel_size, kernel_size), "float32")
        mask[: c + (mask_type == "B")] = 1.0
    else:
        mask = np.zeros((1, kernel_size), "float32")
        mask[0, : c + (mask_type == "B")] = 1.0
    return mask[:, :, None, None]


@keras.saving.register_keras_serializable(package="keras_vae")
class MaskedConv2D(keras.layers.Layer):
    """A stride-1, "same"-padded 2-D convolution whose kernel is multiplied by
    a fixed causal mask (see `causal_mask`).

    Args:
        filters: output channels.
        kernel_size: odd width k; the kernel is `(k, k)` for the vertical
            stack and `(1, k)` for the horizontal one.
        stack: `"vertical"` (rows above) or `"horizontal"` (left in the row).
        mask_type: `"A"` excludes the centre (the first layer), `"B"`
            includes it.
    """

    def __init__(self, filters, kernel_size, stack, mask_type, kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.filters = validation.positive_int("filters", filters)
        self.kernel_size = validation.positive_int("kernel_size", kernel_size)
        if self.kernel_size % 2 == 0:
            raise ValueError(f"`kernel_size` must be odd. Received: kernel_size={kernel_size}")
        if stack not in STACKS:
            raise ValueError(f"`stack` must be one of {STACKS}. Received: stack={stack!r}")
        if mask_type not in MASK_TYPES:
            raise ValueError(f"`mask_type` must be one of {MASK_TYPES}. Received: mask_type={mask_type!r}")
        self.stack, self.mask_type = stack, mask_type
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.mask = causal_mask(self.kernel_size, stack, mask_type)

    def build(self, input_shape):
        self.kernel = self.add_weight(
            name="kernel",
            shape=(*self.mask.shape[:2], input_shape[-1], self.filters),
            initializer=self.kernel_initializer,
        )
        self.bias = self.add_weight(name="bias", shape=(self.filters,), initializer="zeros")

    def call(self, inputs):
        kernel = self.kernel * ops.convert_to_tensor(self.mask, dtype=self.compute_dtype)
        return ops.conv(inputs, kernel, padding="same") + self.bias

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.filters)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "stack": self.stack,
            "mask_type": self.mask_type,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
        }


def _gate(x):
    a, b = ops.split(x, 2, axis=-1)
    return ops.tanh(a) * ops.sigmoid(b)


@keras.saving.register_keras_serializable(package="keras_vae")
class GatedPixelCNNBlock(keras.layers.Layer):
    """One gated block: `(v, h) -> (v', h')` with `filters` channels each.

    `first=True` uses "A" masks and no residual connection on the horizontal
    stack (its input still holds the current position); later blocks use "B"
    masks and `h' = h + conv1x1(dropout(gate(...)))`, with `dropout` active in
    training only.
    """

    def __init__(self, filters, kernel_size, first=False, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.filters = validation.positive_int("filters", filters)
        self.kernel_size = validation.positive_int("kernel_size", kernel_size)
        self.first = bool(first)
        self.dropout = validation.non_negative_float("dropout", dropout)
        if self.dropout >= 1:
            raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout!r}")
        self.dropout_layer = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy)
        mask, policy = "A" if self.first else "B", self.dtype_policy
        self.vertical = MaskedConv2D(2 * filters, kernel_size, "vertical", mask, name="vertical", dtype=policy)
        self.horizontal = MaskedConv2D(2 * filters, kernel_size, "horizontal", mask, name="horizontal", dtype=policy)
        self.vertical_to_horizontal = keras.layers.Conv2D(2 * filters, 1, name="vertical_to_horizontal", dtype=policy)
        self.output_projection = keras.layers.Conv2D(filters, 1, name="output_projection", dtype=policy)

    def build(self, input_shape):
        v_shape, h_shape = input_shape
        self.vertical.build(v_shape)
        self.horizontal.build(h_shape)
        self.vertical_to_horizontal.build((*v_shape[:-1], 2 * self.filters))
        self.output_projection.build((*h_shape[:-1], self.filters))

    def call(self, inputs, training=False):
        v, h = inputs
        v_pre = self.vertical(v)
        h_pre = self.horizontal(h) + self.vertical_to_horizontal(v_pre)
        h_out = self.output_projection(self.dropout_layer(_gate(h_pre), training=training))
        if not self.first:
            h_out = h + h_out
        return _gate(v_pre), h_out

    def compute_output_shape(self, input_shape):
        v_shape, h_shape = input_shape
        return (*v_shape[:-1], self.filters), (*h_shape[:-1], self.filters)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "first": self.first,
            "dropout": self.dropout,
        }
