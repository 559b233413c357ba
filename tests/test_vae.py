import numpy as np
import pytest
from model_test_case import ModelTests

from keras_vae import VAE


class TestVAE(ModelTests):
    model_class = VAE
    init_kwargs = {"latent_dim": 4, "hidden_units": (64,)}


def test_burda_architecture_is_expressible():
    model = VAE(latent_dim=50, hidden_units=(200, 200), activation="tanh")
    dense = [l for l in model.encoder.layers if l.__class__.__name__ == "Dense"]
    assert [l.units for l in dense] == [200, 200, 100]  # mean and scale of 50 latents
    assert all(l.activation.__name__ == "tanh" for l in dense[:-1])
    dense = [l for l in model.decoder.layers if l.__class__.__name__ == "Dense"]
    assert [l.units for l in dense] == [200, 200, 784]


def test_bad_hidden_units_and_activation():
    with pytest.raises(ValueError, match="`hidden_units` must .*Received: hidden_units="):
        VAE(hidden_units=(64, -1))
    with pytest.raises(ValueError, match="`activation` must .*Received: activation='nope'"):
        VAE(activation="nope")


def test_loss_is_negative_elbo_and_multiple_samples(mnist_binary):
    model = VAE(latent_dim=4, hidden_units=(32,), num_samples=3, seed=1)
    terms = {k: float(v) for k, v in model.compute_terms(mnist_binary[:16]).items()}
    assert terms["loss"] == pytest.approx(-terms["elbo"], rel=1e-6)
    assert terms["loss"] == pytest.approx(terms["reconstruction_loss"] + terms["kl"], rel=1e-6)
    assert np.isfinite(list(terms.values())).all()
