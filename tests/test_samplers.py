"""Samplers fitted after training (`fit_sampler`): the EM fit, sampling from
it, saving it, and the refusals. Real MNIST codes; one synthetic mixture with
known parameters for the EM itself."""

import numpy as np
import pytest
import tensorflow as tf

import keras
from keras_vae import AE, VAE, VQVAE, samplers


def test_em_recovers_a_known_mixture():
    rng = np.random.default_rng(0)
    means = np.array([[-4.0, 0.0], [0.0, 5.0], [4.0, -1.0]])
    covs = np.array([[[1.0, 0.5], [0.5, 1.0]], [[0.3, 0.0], [0.0, 2.0]], [[0.5, -0.2], [-0.2, 0.4]]])
    weights = np.array([0.5, 0.3, 0.2])
    which = rng.choice(3, size=6000, p=weights)
    x = np.stack([rng.multivariate_normal(means[k], covs[k]) for k in which])
    fitted_w, fitted_m, tril, history = samplers.fit_gaussian_mixture(x, 3, seed=1)
    order = np.argsort(fitted_m[:, 0])  # the components in the order of their x means
    np.testing.assert_allclose(fitted_w[order], weights, atol=0.02)
    np.testing.assert_allclose(fitted_m[order], means, atol=0.1)
    np.testing.assert_allclose((tril @ np.swapaxes(tril, 1, 2))[order], covs, atol=0.12)
    assert np.all(np.diff(history) >= -1e-9) and len(history) >= 2


@pytest.fixture(scope="module")
def trained_ae(mnist_binary):
    keras.utils.set_random_seed(0)
    model = AE(latent_dim=4, hidden_units=(32,), seed=0)
    model.compile()
    model.fit(mnist_binary, batch_size=64, epochs=3, verbose=0)
    return model


def test_a_mixture_fitted_to_the_codes_explains_them_better_than_the_prior(trained_ae, mnist_binary):
    model = trained_ae
    before = np.asarray(model.sample(8, seed=5))
    history = model.fit_sampler(mnist_binary, components=5, tolerance=1e-6)
    assert np.all(np.diff(history) >= -1e-6) and history[-1] > history[0] + 0.05  # EM raises the likelihood
    codes = np.asarray(model.latent(mnist_binary))
    mixture = np.mean(model.sampling_distribution.log_prob(codes))
    assert abs(mixture - history[-1]) < 1e-3  # float32 weights, the same likelihood as the float64 fit
    assert mixture > np.mean(model.prior.log_prob(codes)) + 1.0
    first, again = np.asarray(model.sample(8, seed=5)), np.asarray(model.sample(8, seed=5))
    np.testing.assert_array_equal(first, again)
    assert np.abs(first - before).max() > 0.1  # no longer the prior's draws
    assert np.abs(first - np.asarray(model.sample(8, seed=6))).max() > 0.1
    # The draws are the mixture's: decoding its samples for the same seed gives the same images.
    z = model.sampling_distribution.sample(8, seed=tf.constant([5, 0]))
    np.testing.assert_allclose(first, model.decode(z).mean(), atol=1e-6)
    model.fit_sampler(None, kind="prior")
    np.testing.assert_array_equal(np.asarray(model.sample(8, seed=5)), before)


def test_the_sampler_survives_a_keras_round_trip(mnist_binary, tmp_path):
    model = VAE(latent_dim=3, hidden_units=(16,), seed=0)
    count = len(model.weights)
    model.fit_sampler(tf.data.Dataset.from_tensor_slices(mnist_binary).batch(100), components=4)
    assert len(model.weights) == count + 3  # logits, loc, scale_tril
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert isinstance(loaded.sampler_layer, samplers.GaussianMixtureSampler) and loaded.sampler_layer.components == 4
    np.testing.assert_array_equal(np.asarray(loaded.sample(6, seed=2)), np.asarray(model.sample(6, seed=2)))
    loaded.fit_sampler(None, kind="prior")
    assert len(loaded.weights) == count and "sampler" not in loaded.get_config()
    loaded.save(tmp_path / "prior.keras")
    assert keras.models.load_model(tmp_path / "prior.keras").sampler_layer is None


def test_fit_sampler_under_two_replicas(two_replicas, mnist_binary):
    with two_replicas.scope():
        model = VAE(latent_dim=3, hidden_units=(16,), seed=0)
    model.fit_sampler(mnist_binary[:128], components=2)
    assert isinstance(model.sampler_layer.loc.value, tf.distribute.DistributedValues)
    assert np.asarray(model.sample(4, seed=0)).shape == (4, 28, 28, 1)


def test_bad_sampler_arguments(mnist_binary):
    model = VAE(latent_dim=3, hidden_units=(16,), seed=0)
    with pytest.raises(ValueError, match=r"`kind` must be one of \('prior', 'gmm'\). Received: kind='flow'"):
        model.fit_sampler(mnist_binary, kind="flow")
    with pytest.raises(ValueError, match="`components` must be a positive integer. Received: components=0"):
        model.fit_sampler(mnist_binary, components=0)
    with pytest.raises(ValueError, match=r"Fitting 20 components needs at least as many codes.*\(8, 3\)"):
        model.fit_sampler(mnist_binary[:8], components=20)
    with pytest.raises(ValueError, match="`data`"):
        model.fit_sampler(np.zeros((10, 5)))
    with pytest.raises(ValueError, match="`sampler` must be None or a keras_vae.samplers.GaussianMixtureSampler over 3"):
        VAE(latent_dim=3, hidden_units=(16,), sampler=samplers.GaussianMixtureSampler(4, 2))
    vq = VQVAE(num_codes=8, code_dim=2, filters=(8, 16), seed=0)
    with pytest.raises(ValueError, match="a VQVAE draws its code maps from its PixelCNN prior"):
        vq.fit_sampler(mnist_binary)
    assert model.sampler_layer is None
