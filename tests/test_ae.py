import numpy as np
import pytest
from model_test_case import ModelTests

from keras_vae import AE, ConvAE


class TestAE(ModelTests):
    model_class = AE
    init_kwargs = {"latent_dim": 4, "hidden_units": (64,)}


class TestConvAE(ModelTests):
    model_class = ConvAE
    init_kwargs = {"latent_dim": 4, "filters": (8, 16)}


def test_deterministic_code_and_no_kl(mnist_binary):
    model = AE(latent_dim=4, hidden_units=(32,), seed=0)
    x = mnist_binary[:8]
    posterior = model.encode(x)
    np.testing.assert_array_equal(posterior.sample(seed=(1, 2)), posterior.mean())
    terms = model.compute_terms(x)
    assert set(terms) == {"loss", "reconstruction_loss"}
    assert float(terms["loss"]) == pytest.approx(float(terms["reconstruction_loss"]))
    assert model.encoder.output_shape == (None, 4)
