import keras
import numpy as np
import pytest
from model_test_case import ModelTests

from keras_vae import ConvVAE
from keras_vae.layers import WeightNormConv2D, weight_norm


class TestConvVAE(ModelTests):
    model_class = ConvVAE
    init_kwargs = {"latent_dim": 4, "filters": (8, 16)}


class TestResidualConvVAE(ModelTests):
    model_class = ConvVAE
    # One block per stage keeps the mixin fast; stages of several blocks are checked below.
    init_kwargs = {"latent_dim": 4, "filters": (4, 8), "network": "residual", "activation": "elu", "blocks_per_stage": 1}
    bad_constructor_args = ModelTests.bad_constructor_args + [
        ({"network": "resnet"}, "network"), ({"blocks_per_stage": 0}, "blocks_per_stage"),
        ({"weight_norm": "yes"}, "weight_norm"), ({"dense_units": (8, 0)}, "dense_units"),
    ]


class TestResidualConvVAEWithDenseLayers(ModelTests):
    model_class = ConvVAE
    # ReLU: graph-mode `predict` fuses Dense + bias + ELU into one kernel whose
    # ELU differs from the eager op by an ulp, so the mixin's exact
    # eager/graph equality would not hold with ELU dense layers.
    init_kwargs = {**TestResidualConvVAE.init_kwargs, "dense_units": (12,), "activation": "relu"}


@pytest.mark.parametrize("network", ["conv", "residual"])
@pytest.mark.parametrize("shape", [(28, 28, 1), (30, 17, 3), (8, 8, 2)])
def test_any_image_size(shape, network):
    model = ConvVAE(data_shape=shape, latent_dim=3, filters=(4, 8), likelihood="gaussian", network=network, seed=0)
    x = np.random.default_rng(0).normal(size=(2, *shape)).astype("float32")
    assert model.reconstruct(x).shape == (2, *shape)
    assert np.isfinite(float(model.compute_terms(x)["loss"]))


def test_rejects_non_image_shape():
    with pytest.raises(ValueError, match=r"`data_shape` must be \(height, width, channels\)"):
        ConvVAE(data_shape=(784,))


def test_residual_stages_and_blocks_are_what_the_arguments_say():
    model = ConvVAE(latent_dim=2, filters=(4, 8, 8), network="residual", blocks_per_stage=3, seed=0)
    for network, prefix, sizes in ((model.encoder, "down", (14, 7, 4)), (model.decoder, "up", (8, 16, 32))):
        adds = [layer for layer in network.layers if isinstance(layer, keras.layers.Add)]
        assert len(adds) == 3 * 3
        for stage, size in enumerate(sizes):
            assert network.get_layer(f"{prefix}{stage}_2_add").output.shape[1] == size
    assert all(isinstance(model.encoder.get_layer(n), WeightNormConv2D) for n in ("stem", "down0_0_conv1"))
    plain = ConvVAE(latent_dim=2, filters=(4, 8), network="residual", weight_norm=False, seed=0)
    assert not [layer for layer in plain.encoder.layers if isinstance(layer, WeightNormConv2D)]


@pytest.mark.parametrize("network, default", [("conv", ()), ("residual", ()), ("locatello", (256,))])
def test_dense_units_sit_between_the_feature_map_and_the_latent_mirrored_in_the_decoder(network, default):
    shape = (64, 64, 1) if network == "locatello" else (28, 28, 1)

    def widths(model):
        return [[layer.units for layer in net.layers if isinstance(layer, keras.layers.Dense)]
                for net in (model.encoder, model.decoder)]

    plain = ConvVAE(data_shape=shape, latent_dim=3, filters=(4, 8), network=network, seed=0)
    assert plain.dense_units == default
    smallest = 7 * 7 * 8 if network != "locatello" else 16 * 16 * 8
    assert widths(plain) == [[*default, 6], [*default, smallest]]
    model = ConvVAE(data_shape=shape, latent_dim=3, filters=(4, 8), network=network, dense_units=(20, 10), seed=0)
    assert widths(model) == [[20, 10, 6], [10, 20, smallest]]
    assert ConvVAE.from_config(model.get_config()).dense_units == (20, 10)
    x = np.zeros((2, *shape), "float32")
    assert model.reconstruct(x).shape == (2, *shape)


@pytest.mark.parametrize("transpose", [False, True])
@pytest.mark.parametrize("strides", [1, 2])
def test_weight_norm_conv_computes_a_plain_convolution_until_initialised(transpose, strides):
    """w = g v / ||v|| with g starting at ||v||: the same outputs as Keras'
    Conv2D / Conv2DTranspose with kernel v and the same bias."""
    x = np.random.default_rng(0).normal(size=(2, 9, 7, 3)).astype("float32")
    layer = WeightNormConv2D(5, 3, strides, transpose=transpose)
    layer.build(x.shape)
    layer.bias.assign(np.linspace(-1, 1, 5).astype("float32"))
    plain = (keras.layers.Conv2DTranspose if transpose else keras.layers.Conv2D)(5, 3, strides=strides, padding="same")
    plain.build(x.shape)
    plain.set_weights([layer.v.numpy(), layer.bias.numpy()])
    np.testing.assert_allclose(layer(x), plain(x), atol=1e-5)
    assert tuple(layer.compute_output_shape(x.shape)) == tuple(plain(x).shape)
    np.testing.assert_allclose(layer.g.numpy(), np.sqrt((layer.v.numpy() ** 2).sum(axis=(0, 1, 3 if transpose else 2))),
                               rtol=1e-6)


# bfloat16 keeps 8 significant bits: a layer whose pre-activations have a
# large mean cancels it against an equally large bias at a resolution of
# ~1/100 of their size, so its standardised outputs are close, not exact.
@pytest.mark.parametrize("dtype, mean_atol, std_rtol", [("float32", 1e-4, 1e-3), ("mixed_bfloat16", 1e-2, 1e-2)])
def test_data_dependent_init_standardises_each_layer_on_the_batch(mnist_binary, dtype, mean_atol, std_rtol):
    model = ConvVAE(latent_dim=4, filters=(8, 16), network="residual", activation="elu", seed=0, dtype=dtype)
    x = mnist_binary[:64]
    model.initialize_from_data(x)
    for name, scale in (("stem", 1.0), ("down0_0_conv1", 1.0), ("down1_1_conv2", 0.1)):
        outputs = keras.Model(model.encoder.input, model.encoder.get_layer(name).output)(x).numpy()
        outputs = outputs.astype("float32")
        np.testing.assert_allclose(outputs.mean(axis=(0, 1, 2)), 0.0, atol=mean_atol * scale)
        np.testing.assert_allclose(outputs.std(axis=(0, 1, 2)), scale, rtol=std_rtol)
    z = model.encode(x).sample(seed=(0, 0))
    hidden = model.decoder.get_layer("up1_0_conv1")
    outputs = keras.Model(model.decoder.input, hidden.output)(z).numpy().astype("float32")
    assert abs(outputs.std() - 1.0) < 0.5  # initialised on other z draws: near, not exactly, 1
    assert not hidden._init_pending

    class OneOfTwo(keras.layers.Layer):
        def __init__(self):
            super().__init__()
            self.used, self.unused = WeightNormConv2D(2, name="used"), WeightNormConv2D(2, name="unused")

        def call(self, x):
            return self.used(x)

    holder = OneOfTwo()
    holder.unused.build((None, 4, 4, 1))
    with pytest.raises(ValueError, match=r"`network` did not call these weight-normalised layers on `x`: \['unused'\]"):
        weight_norm.initialize_from_data(holder, np.ones((2, 4, 4, 1), "float32"))
    assert not holder.unused._init_pending  # nothing left half-initialised
