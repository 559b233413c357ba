"""Encoder and decoder stacks used by the zoo models.

Each builder returns a built `keras.Sequential` whose first layer is an
`Input`, so all variables exist before an optimizer is built. The final layer
is linear: it emits distribution parameters (posterior or likelihood), never
probabilities.
"""

import math

import keras


def mlp_encoder(data_shape, hidden_units, activation, output_units, dtype=None, name="encoder"):
    """Flatten -> Dense(hidden_units[i], activation) ... -> Dense(output_units)."""
    layers = [keras.Input(shape=data_shape), keras.layers.Flatten(dtype=dtype)]
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


def _upsampling(filters, kernel_size, activation, data_shape, dtype):
    """Conv2DTranspose(f, stride 2) for f in filters, a stride-1 Conv2DTranspose
    to the data's channels, then a crop of the rows/columns the upsampling adds
    when H or W is not a multiple of 2**len(filters)."""
    height, width, channels = data_shape
    h, w = _smallest_map(data_shape, len(filters))
    steps = 2 ** len(filters)
    layers = [
        keras.layers.Conv2DTranspose(
            f, kernel_size, strides=2, padding="same", activation=activation, dtype=dtype
        )
        for f in filters
    ]
    layers.append(
        keras.layers.Conv2DTranspose(channels, kernel_size, padding="same", dtype=dtype, name="params")
    )
    extra_h, extra_w = h * steps - height, w * steps - width
    if extra_h or extra_w:
        layers.append(keras.layers.Cropping2D(((0, extra_h), (0, extra_w)), dtype=dtype))
    return layers


def _smallest_map(data_shape, num_downsamplings):
    steps = 2**num_downsamplings
    return math.ceil(data_shape[0] / steps), math.ceil(data_shape[1] / steps)


def conv_encoder(
    data_shape, filters, kernel_size, activation, output_units, dtype=None, name="encoder"
):
    """Conv2D(filters[i], stride 2, same padding) ... -> Flatten -> Dense(output_units)."""
    layers = [keras.Input(shape=data_shape), *_downsampling(filters, kernel_size, activation, dtype)]
    layers += [keras.layers.Flatten(dtype=dtype), keras.layers.Dense(output_units, dtype=dtype, name="params")]
    return keras.Sequential(layers, name=name)


def conv_decoder(
    latent_dim, filters, kernel_size, activation, data_shape, dtype=None, name="decoder"
):
    """Mirror of `conv_encoder` for any `H x W x C`: Dense -> Reshape to the
    encoder's smallest feature map -> the upsampling stack."""
    h, w = _smallest_map(data_shape, len(filters))
    layers = [
        keras.Input(shape=(latent_dim,)),
        keras.layers.Dense(h * w * filters[0], activation=activation, dtype=dtype),
        keras.layers.Reshape((h, w, filters[0]), dtype=dtype),
        *_upsampling(filters, kernel_size, activation, data_shape, dtype),
    ]
    return keras.Sequential(layers, name=name)


def conv_map_encoder(data_shape, filters, kernel_size, activation, code_dim, dtype=None, name="encoder"):
    """Conv2D(filters[i], stride 2) ... -> Conv2D(code_dim, 1): a map of
    `code_dim`-vectors, `[H / 2**L, W / 2**L, code_dim]` (rounded up)."""
    layers = [keras.Input(shape=data_shape), *_downsampling(filters, kernel_size, activation, dtype)]
    layers.append(keras.layers.Conv2D(code_dim, 1, dtype=dtype, name="codes"))
    return keras.Sequential(layers, name=name)


def conv_map_decoder(map_shape, filters, kernel_size, activation, data_shape, dtype=None, name="decoder"):
    """Mirror of `conv_map_encoder`: the upsampling stack from the code map."""
    layers = [keras.Input(shape=map_shape), *_upsampling(filters, kernel_size, activation, data_shape, dtype)]
    return keras.Sequential(layers, name=name)
