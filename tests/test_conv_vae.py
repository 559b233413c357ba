import numpy as np
import pytest
from model_test_case import ModelTests

from keras_vae import ConvVAE


class TestConvVAE(ModelTests):
    model_class = ConvVAE
    init_kwargs = {"latent_dim": 4, "filters": (8, 16)}


@pytest.mark.parametrize("shape", [(28, 28, 1), (30, 17, 3), (8, 8, 2)])
def test_any_image_size(shape):
    model = ConvVAE(data_shape=shape, latent_dim=3, filters=(4, 8), likelihood="gaussian", seed=0)
    x = np.random.default_rng(0).normal(size=(2, *shape)).astype("float32")
    assert model.reconstruct(x).shape == (2, *shape)
    assert np.isfinite(float(model.compute_terms(x)["loss"]))


def test_rejects_non_image_shape():
    with pytest.raises(ValueError, match=r"`data_shape` must be \(height, width, channels\)"):
        ConvVAE(data_shape=(784,))
