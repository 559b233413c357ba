"""Encoder and decoder stacks used by the zoo models.

Each builder returns a built `keras.Sequential` (or, for the residual
networks, a functional `keras.Model`) whose first layer is an `Input`, so all
variables exist before an optimizer is built. The final layer
is linear: it emits distribution parameters (posterior or likelihood), never
probabilities.
"""

import math

import keras
import numpy as np

from keras_vae.layers.weight_norm import WeightNormConv2D


def stages_for(data_shape):
    """Down-sampling stages for an `H x W` image: halve the smaller side
    while it stays at least 4 pixels (28 -> 2, 32 -> 3, 64 -> 4, 128 -> 5)."""
    return max(1, int(math.floor(math.log2(min(data_shape[0], data_shape[1]) / 4))))


def stage_filters(data_shape, filters=None):
    """Channels per stage: `filters` as given (a tuple, one per stage), or
    from the image size (`stages_for`) with `filters` (an int, default 32)
    channels in the first stage, doubling per stage up to 256. Anything
    else (a bad value included) is returned as it is, for the caller to check."""
    automatic = filters is None or (isinstance(filters, (int, np.integer)) and not isinstance(filters, bool)
                                    and filters > 0)
    if not automatic:
        return filters
    base = 32 if filters is None else int(filters)
    return tuple(min(base * 2**i, max(256, base)) for i in range(stages_for(data_shape)))


def _inputs(data_shape, input_scale, dtype):
    """`Input`, then `Rescaling(input_scale)` unless the scale is 1 (8-bit
    pixels reach the network as grey levels in [0, 1])."""
    layers = [keras.Input(shape=data_shape)]
    if input_scale != 1.0:
        layers.append(keras.layers.Rescaling(input_scale, dtype=dtype, name="to_unit"))
    return layers


def mlp_encoder(data_shape, hidden_units, activation, output_units, dtype=None, name="encoder", input_scale=1.0):
    """[Rescaling] -> Flatten -> Dense(hidden_units[i], activation) ... -> Dense(output_units)."""
    layers = [*_inputs(data_shape, input_scale, dtype), keras.layers.Flatten(dtype=dtype)]
    layers += [keras.layers.Dense(u, activation=activation, dtype=dtype) for u in hidden_units]
    layers.append(keras.layers.Dense(output_units, dtype=dtype, name="params"))
    return keras.Sequential(layers, name=name)


def mlp_decoder(latent_dim, hidden_units, activation, data_shape, dtype=None, name="decoder"):
    """Dense(hidden_units[i], activation) ... -> Dense(prod(data_shape)) -> Reshape."""
    layers = [keras.Input(shape=(latent_dim,))]
    layers += [keras.layers.Dense(u, activation=activation, dtype=dtype) for u in hidden_units]
    layers.append(keras.layers.Dense(math.prod(data_shape), dtype=dtype, name="params"))
    layers.append(keras.layers.Reshape(data_shape, dtype=dtype))
    return keras.Sequential(layers, name=name)


def _downsampling(filters, kernel_size, activation, dtype):
    return [
        keras.layers.Conv2D(f, kernel_size, strides=2, padding="same", activation=activation, dtype=dtype)
        for f in filters
    ]


def _upsampling(filters, kernel_size, activation, data_shape, dtype, last_doubles=False):
    """Conv2DTranspose(f, stride 2) for f in filters, a stride-1 Conv2DTranspose
    to the data's channels, then a crop of the rows/columns the upsampling adds
    when H or W is not a multiple of 2**len(filters). With `last_doubles` the
    layer to the channels is the last stride-2 one, after `filters[1:]` (the
    first of `filters` is the reshaped map's)."""
    channels = data_shape[-1]
    layers = [
        keras.layers.Conv2DTranspose(
            f, kernel_size, strides=2, padding="same", activation=activation, dtype=dtype
        )
        for f in (filters[1:] if last_doubles else filters)
    ]
    layers.append(
        keras.layers.Conv2DTranspose(channels, kernel_size, strides=2 if last_doubles else 1, padding="same",
                                     dtype=dtype, name="params")
    )
    crop = _crop_to(data_shape, len(filters), dtype)
    return layers + ([crop] if crop else [])


def _crop_to(data_shape, num_upsamplings, dtype):
    """The crop of the rows/columns that `num_upsamplings` doublings of the
    smallest map add beyond `H x W` (None when there are none)."""
    h, w = _smallest_map(data_shape, num_upsamplings)
    steps = 2**num_upsamplings
    extra_h, extra_w = h * steps - data_shape[0], w * steps - data_shape[1]
    if extra_h or extra_w:
        return keras.layers.Cropping2D(((0, extra_h), (0, extra_w)), dtype=dtype)
    return None


def _smallest_map(data_shape, num_downsamplings):
    steps = 2**num_downsamplings
    return math.ceil(data_shape[0] / steps), math.ceil(data_shape[1] / steps)


def conv_encoder(
    data_shape, filters, kernel_size, activation, output_units, dtype=None, name="encoder", input_scale=1.0,
    hidden_units=(),
):
    """[Rescaling] -> Conv2D(filters[i], stride 2, same padding) ... -> Flatten ->
    Dense(hidden_units[i], activation) ... -> Dense(output_units)."""
    layers = [*_inputs(data_shape, input_scale, dtype), *_downsampling(filters, kernel_size, activation, dtype)]
    layers.append(keras.layers.Flatten(dtype=dtype))
    layers += [keras.layers.Dense(u, activation=activation, dtype=dtype) for u in hidden_units]
    layers.append(keras.layers.Dense(output_units, dtype=dtype, name="params"))
    return keras.Sequential(layers, name=name)


def conv_decoder(
    latent_dim, filters, kernel_size, activation, data_shape, dtype=None, name="decoder", hidden_units=(),
    last_doubles=False,
):
    """Mirror of `conv_encoder` for any `H x W x C`: Dense(hidden_units[i],
    activation) ... -> Dense -> Reshape to the encoder's smallest feature map
    -> the upsampling stack (`_upsampling`, `last_doubles`)."""
    h, w = _smallest_map(data_shape, len(filters))
    layers = [
        keras.Input(shape=(latent_dim,)),
        *[keras.layers.Dense(u, activation=activation, dtype=dtype) for u in hidden_units],
        keras.layers.Dense(h * w * filters[0], activation=activation, dtype=dtype),
        keras.layers.Reshape((h, w, filters[0]), dtype=dtype),
        *_upsampling(filters, kernel_size, activation, data_shape, dtype, last_doubles),
    ]
    return keras.Sequential(layers, name=name)


def conv_map_encoder(data_shape, filters, kernel_size, activation, code_dim, dtype=None, name="encoder",
                     input_scale=1.0):
    """[Rescaling] -> Conv2D(filters[i], stride 2) ... -> Conv2D(code_dim, 1): a map of
    `code_dim`-vectors, `[H / 2**L, W / 2**L, code_dim]` (rounded up)."""
    layers = [*_inputs(data_shape, input_scale, dtype), *_downsampling(filters, kernel_size, activation, dtype)]
    layers.append(keras.layers.Conv2D(code_dim, 1, dtype=dtype, name="codes"))
    return keras.Sequential(layers, name=name)


def conv_map_decoder(map_shape, filters, kernel_size, activation, data_shape, dtype=None, name="decoder"):
    """Mirror of `conv_map_encoder`: the upsampling stack from the code map."""
    layers = [keras.Input(shape=map_shape), *_upsampling(filters, kernel_size, activation, data_shape, dtype)]
    return keras.Sequential(layers, name=name)


# ---------------------------------------------------------------------- #
# Residual networks (the family of Kingma et al. 2016's MNIST ResNet VAE)
# ---------------------------------------------------------------------- #
def _conv(filters, kernel_size, strides, transpose, weight_norm, dtype, name, init_scale=1.0):
    if weight_norm:
        return WeightNormConv2D(filters, kernel_size, strides, transpose=transpose, init_scale=init_scale,
                                dtype=dtype, name=name)
    layer = keras.layers.Conv2DTranspose if transpose else keras.layers.Conv2D
    return layer(filters, kernel_size, strides=strides, padding="same", dtype=dtype, name=name)


def _residual_block(x, filters, strides, transpose, kernel_size, activation, weight_norm, dtype, name):
    """Pre-activation residual block: x + conv(act(conv(act(x)))). With
    `strides=2` the first convolution halves the map (or, with `transpose`,
    doubles it) and the shortcut is a strided convolution to `filters`."""
    h = keras.layers.Activation(activation, dtype=dtype, name=f"{name}_act1")(x)
    h = _conv(filters, kernel_size, strides, transpose and strides > 1, weight_norm, dtype, f"{name}_conv1")(h)
    h = keras.layers.Activation(activation, dtype=dtype, name=f"{name}_act2")(h)
    h = _conv(filters, kernel_size, 1, False, weight_norm, dtype, f"{name}_conv2", init_scale=0.1)(h)
    if strides > 1 or x.shape[-1] != filters:
        # A transposed 1x1 stride-2 shortcut would leave every other pixel at zero.
        x = _conv(filters, kernel_size if transpose else 1, strides, transpose and strides > 1, weight_norm, dtype,
                  f"{name}_shortcut")(x)
    return keras.layers.Add(dtype=dtype, name=f"{name}_add")([x, h])


def _residual_stages(x, filters, blocks_per_stage, transpose, kernel_size, activation, weight_norm, dtype, prefix):
    """One stage per entry of `filters`: a stride-2 residual block, then
    `blocks_per_stage - 1` stride-1 blocks, all with that many channels."""
    for stage, f in enumerate(filters):
        for block in range(blocks_per_stage):
            x = _residual_block(x, f, 2 if block == 0 else 1, transpose, kernel_size, activation, weight_norm, dtype,
                                f"{prefix}{stage}_{block}")
    return x


def residual_encoder(data_shape, filters, blocks_per_stage, kernel_size, activation, output_units,
                     weight_norm=True, dtype=None, name="encoder", input_scale=1.0, hidden_units=()):
    """[Rescaling] -> Conv(filters[0]) -> residual stages (each halving the map) -> act ->
    Flatten -> Dense(hidden_units[i], activation) ... -> Dense(output_units)."""
    inputs, *scaling = _inputs(data_shape, input_scale, dtype)
    x = scaling[0](inputs) if scaling else inputs
    x = _conv(filters[0], kernel_size, 1, False, weight_norm, dtype, "stem")(x)
    x = _residual_stages(x, filters, blocks_per_stage, False, kernel_size, activation, weight_norm, dtype, "down")
    x = keras.layers.Activation(activation, dtype=dtype)(x)
    x = keras.layers.Flatten(dtype=dtype)(x)
    for units in hidden_units:
        x = keras.layers.Dense(units, activation=activation, dtype=dtype)(x)
    outputs = keras.layers.Dense(output_units, dtype=dtype, name="params")(x)
    return keras.Model(inputs, outputs, name=name)


def residual_decoder(latent_dim, filters, blocks_per_stage, kernel_size, activation, data_shape,
                     weight_norm=True, dtype=None, name="decoder", hidden_units=()):
    """Mirror of `residual_encoder` for any `H x W x C`: Dense(hidden_units[i],
    activation) ... -> Dense -> Reshape to the encoder's smallest map ->
    residual stages (each doubling it) -> act -> Conv(C) -> crop to `H x W`."""
    h, w = _smallest_map(data_shape, len(filters))
    inputs = x = keras.Input(shape=(latent_dim,))
    for units in hidden_units:
        x = keras.layers.Dense(units, activation=activation, dtype=dtype)(x)
    x = keras.layers.Dense(h * w * filters[0], dtype=dtype)(x)
    x = keras.layers.Reshape((h, w, filters[0]), dtype=dtype)(x)
    x = _residual_stages(x, filters, blocks_per_stage, True, kernel_size, activation, weight_norm, dtype, "up")
    x = keras.layers.Activation(activation, dtype=dtype)(x)
    x = keras.layers.Conv2D(data_shape[-1], kernel_size, padding="same", dtype=dtype, name="params")(x)
    crop = _crop_to(data_shape, len(filters), dtype)
    return keras.Model(inputs, crop(x) if crop else x, name=name)
