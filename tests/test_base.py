"""BaseVAE behaviour not tied to one zoo entry: own networks, KL fallback,
XLA, mixed precision, compile arguments."""

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from keras_vae import BaseVAE, ConvVAE, VAE
from keras_vae.layers import networks

tfd = tfp.distributions


def _own_networks(latent_dim=3):
    encoder = networks.mlp_encoder((28, 28, 1), (16,), "relu", 2 * latent_dim)
    decoder = networks.mlp_decoder(latent_dim, (16,), "relu", (28, 28, 1))
    return encoder, decoder


def test_base_with_own_networks_round_trips(mnist_binary, tmp_path):
    model = BaseVAE(*_own_networks(), latent_dim=3, seed=2)
    model.compile()
    model.fit(mnist_binary[:32], batch_size=16, epochs=1, verbose=0)
    model.save(tmp_path / "base.keras")
    restored = keras.models.load_model(tmp_path / "base.keras")
    np.testing.assert_array_equal(restored.encode(mnist_binary[:4]).mean(), model.encode(mnist_binary[:4]).mean())


def test_networks_of_the_wrong_shape_are_rejected():
    encoder, decoder = _own_networks(latent_dim=3)
    with pytest.raises(ValueError, match=r"`encoder` must output shape \(None, 4\)"):
        BaseVAE(encoder, decoder, latent_dim=2)
    with pytest.raises(ValueError, match="`decoder` must be a Keras layer or model"):
        BaseVAE(encoder, "decoder", latent_dim=3)


class _FullCovariancePosterior(BaseVAE):
    """A posterior family with no registered KL against the prior."""

    def make_posterior(self, params):
        loc, raw = tf.split(params, 2, -1)
        return tfd.MultivariateNormalDiag(loc, tf.nn.softplus(raw) + 1e-5)


def test_monte_carlo_kl_when_no_formula_is_registered(mnist_binary):
    x = mnist_binary[:4]
    analytic = BaseVAE(*_own_networks(), latent_dim=3, seed=0)
    mc = _FullCovariancePosterior(*_own_networks(), latent_dim=3, seed=0, num_samples=20_000)
    mc.set_weights(analytic.get_weights())
    with pytest.raises(NotImplementedError):
        tfd.kl_divergence(mc.encode(x), mc.prior)
    kl_exact = float(analytic.compute_terms(x)["kl"])
    kl_mc = float(mc.compute_terms(x)["kl"])
    assert kl_mc == pytest.approx(kl_exact, abs=0.05)


@pytest.mark.parametrize("model_class, kwargs", [(VAE, {"hidden_units": (32,)}), (ConvVAE, {"filters": (4, 8)})])
@pytest.mark.parametrize("jit_compile", [True, False])
def test_jit_compile_on_and_off(mnist_binary, model_class, kwargs, jit_compile):
    model = model_class(latent_dim=3, seed=0, **kwargs)
    model.compile(jit_compile=jit_compile)
    assert model.jit_compile is jit_compile
    history = model.fit(mnist_binary[:32], batch_size=16, epochs=1, verbose=0).history
    assert np.isfinite(history["loss"]).all()


def test_auto_jit_compile_uses_the_measured_default():
    for model_class in (VAE, ConvVAE):
        model = model_class(latent_dim=2, seed=0)
        model.compile()
        assert model.jit_compile is model_class.default_jit_compile


@pytest.fixture
def policy():
    yield keras.mixed_precision.set_global_policy
    keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize("name", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision(mnist_binary, policy, name):
    policy(name)
    model = ConvVAE(latent_dim=3, filters=(4, 8), seed=0)
    model.compile()
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer) == (name == "mixed_float16")
    assert model.encoder.layers[0].compute_dtype == name.split("_")[1]
    terms = model.compute_terms(mnist_binary[:8])
    assert all(v.dtype == tf.float32 for v in terms.values())
    assert model.encode(mnist_binary[:8]).dtype == tf.float32
    history = model.fit(mnist_binary[:32], batch_size=16, epochs=1, verbose=0).history
    assert np.isfinite(history["loss"]).all()


def test_compile_rejects_a_loss_and_fit_rejects_sample_weights(mnist_binary):
    model = VAE(latent_dim=2, hidden_units=(8,), seed=0)
    with pytest.raises(ValueError, match="do not pass a compiled loss. Received: loss='mse'"):
        model.compile(loss="mse")
    model.compile()
    with pytest.raises(ValueError, match="sample_weight"):
        model.fit(mnist_binary[:8], sample_weight=np.ones(8), verbose=0)


def test_seed_argument_is_checked():
    with pytest.raises(ValueError, match="`seed` must be an integer >= 0. Received: seed=-1"):
        VAE(seed=-1)
    model = VAE(latent_dim=2, hidden_units=(8,), seed=0)
    with pytest.raises(ValueError, match="`num_samples` must be a positive integer. Received: num_samples=0"):
        model.sample(0)


def test_several_replicas_train_without_xla_and_one_step_per_execution(two_replicas):
    with two_replicas.scope():
        model = VAE(latent_dim=2, hidden_units=(8,), seed=0)
        model.compile()
        assert (model.jit_compile, model.steps_per_execution) == (False, 1)
        with pytest.warns(UserWarning, match="steps_per_execution > 1 is not supported"):
            model.compile(steps_per_execution=4)
        with pytest.warns(UserWarning, match="jit_compile=True is not supported"):
            model.compile(jit_compile=True)
    single = VAE(latent_dim=2, hidden_units=(8,), seed=0)
    single.compile()
    assert (single.jit_compile, single.steps_per_execution) == (True, VAE.default_steps_per_execution)
