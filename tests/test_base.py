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


class _MultivariateNormalDiagPosterior(BaseVAE):
    """The same family as the default posterior, but one with no registered
    KL against the `Independent(Normal)` prior."""

    def make_posterior(self, params):
        loc, raw = tf.split(params, 2, -1)
        return tfd.MultivariateNormalDiag(loc, tf.nn.softplus(raw) + 1e-5)


def test_monte_carlo_kl_when_no_formula_is_registered(mnist_binary):
    x = mnist_binary[:4]
    analytic = BaseVAE(*_own_networks(), latent_dim=3, seed=0)
    mc = _MultivariateNormalDiagPosterior(*_own_networks(), latent_dim=3, seed=0, num_samples=20_000)
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
    with pytest.raises(ValueError, match="do not pass a compiled `loss`. Received: loss='mse'"):
        model.compile(loss="mse")
    with pytest.raises(ValueError, match="do not pass a compiled `metrics`. Received: metrics=.'mae'."):
        model.compile(metrics=["mae"])
    model.compile()
    with pytest.raises(ValueError, match="sample_weight"):
        model.fit(mnist_binary[:8], sample_weight=np.ones(8), verbose=0)


def test_seed_argument_is_checked():
    with pytest.raises(ValueError, match=r"`seed` must be an integer in \[0, 2147483647\]. Received: seed=-1"):
        VAE(seed=-1)
    model = VAE(latent_dim=2, hidden_units=(8,), seed=0)
    with pytest.raises(ValueError, match="Received: seed=4294967296"):
        model.sample(1, seed=2**32)  # would wrap around to seed 0 in int32
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


def test_step_counts_that_the_default_steps_per_execution_does_not_divide_are_run_exactly(mnist_binary, tmp_path):
    """Keras runs whole calls of `steps_per_execution` steps: 3 steps an epoch
    at 8 per call would train 8."""
    batches = tf.data.Dataset.from_tensor_slices(mnist_binary).batch(16)
    model = VAE(latent_dim=2, hidden_units=(16,), seed=0)
    model.compile()
    model.fit(batches.repeat(), epochs=2, steps_per_epoch=3, verbose=0)
    assert (int(model.optimizer.iterations), model.steps_per_execution) == (6, 3)
    model.fit(batches, epochs=1, verbose=0)  # one pass of 16 batches: the default again
    assert (int(model.optimizer.iterations), model.steps_per_execution) == (22, VAE.default_steps_per_execution)
    model.fit(batches.repeat(), steps_per_epoch=12, validation_data=batches, validation_steps=6, verbose=0)
    assert (int(model.optimizer.iterations), model.steps_per_execution) == (34, 6)
    # `steps=5` scores the first 5 batches, no more (the evaluation noise is reset at each call).
    assert model.evaluate(batches, steps=5, verbose=0) == model.evaluate(batches.take(5), verbose=0)
    model.save(tmp_path / "m.keras")
    assert keras.saving.load_model(tmp_path / "m.keras").steps_per_execution == VAE.default_steps_per_execution
    explicit = VAE(latent_dim=2, hidden_units=(16,), seed=0)
    explicit.compile(steps_per_execution=4)
    with pytest.raises(ValueError, match=r"`steps_per_epoch` must be a multiple of the compiled `steps_per_execution` "
                       r"\(4\): Keras runs 4 steps per call, so 6 would run 8. Received: steps_per_epoch=6"):
        explicit.fit(batches.repeat(), steps_per_epoch=6, verbose=0)
    assert int(explicit.optimizer.iterations) == 0


class _LogisticPosterior(BaseVAE):
    """Not a Gaussian: sampled through `posterior.sample`, KL by Monte Carlo."""

    def make_posterior(self, params):
        loc, raw = tf.split(params, 2, -1)
        return tfd.Independent(tfd.Logistic(loc, tf.nn.softplus(raw) + 1e-5), 1)


def test_other_posterior_families_are_sampled_from_themselves(mnist_binary):
    model = _LogisticPosterior(*_own_networks(), latent_dim=3, seed=0)
    posterior = model.encode(mnist_binary[:2])
    z = model.sample_posterior(posterior, 20_000).numpy()
    scale = posterior.distribution.scale.numpy()
    # A logistic's standard deviation is scale * pi / sqrt(3), not scale.
    np.testing.assert_allclose(z.std(0), scale * np.pi / np.sqrt(3), rtol=0.05)
    model.compile()
    assert np.isfinite(model.fit(mnist_binary[:16], batch_size=8, verbose=0).history["kl"]).all()


def test_metrics_weight_batches_by_their_size(mnist_binary):
    from keras_vae import AE

    model = AE(latent_dim=2, hidden_units=(8,), seed=0)  # deterministic: exact comparison
    model.compile()
    x = mnist_binary[:30]
    logs = model.evaluate(x, batch_size=8, return_dict=True, verbose=0)  # 8, 8, 8, 6
    assert logs["loss"] == pytest.approx(float(model.compute_terms(x)["loss"]), rel=1e-5)


def test_validation_does_not_change_training(mnist_binary):
    def train(validation):
        model = VAE(latent_dim=2, hidden_units=(8,), seed=3)
        model.set_weights(reference)
        model.compile(optimizer=keras.optimizers.Adam(1e-2))
        model.fit(mnist_binary[:64], batch_size=16, epochs=2, verbose=0, shuffle=False,
                  validation_data=(mnist_binary[64:96],) if validation else None)
        return [np.asarray(v) for v in model.trainable_weights]

    reference = VAE(latent_dim=2, hidden_units=(8,), seed=3).get_weights()
    for a, b in zip(train(False), train(True)):
        np.testing.assert_array_equal(a, b)


def test_likelihood_arguments_are_named_in_errors():
    with pytest.raises(ValueError, match="`likelihood_scale` must be a finite number > 0. Received: likelihood_scale=0"):
        VAE(likelihood="gaussian", likelihood_scale=0)
    with pytest.raises(ValueError, match="`likelihood` must be one of"):
        VAE(likelihood=["bernoulli"])


def _gaussian_kl_per_dimension(posterior):
    """KL(N(mu, s^2) || N(0, 1)) per example and dimension, in numpy."""
    mu, s = posterior.mean().numpy().astype("float64"), posterior.stddev().numpy().astype("float64")
    return 0.5 * (mu**2 + s**2 - 1.0 - 2.0 * np.log(s))


def test_kl_warmup_weights_the_kl_in_the_loss_only(mnist_binary):
    x = mnist_binary[:16]
    model = VAE(latent_dim=4, hidden_units=(32,), kl_warmup_steps=8, seed=1)
    assert float(model.kl_weight()) == 0.0  # not compiled: step 0
    model.compile(optimizer=keras.optimizers.SGD(0.0), jit_compile=False, steps_per_execution=1)
    for steps, weight in ((0, 0.0), (2, 0.25), (6, 1.0), (4, 1.0)):  # 0, 2, 8, 12 steps done
        for _ in range(steps):
            model.train_on_batch(x)
        assert float(model.kl_weight()) == pytest.approx(weight)
        terms = {k: float(v) for k, v in model.compute_terms(x).items()}
        assert terms["loss"] == pytest.approx(terms["reconstruction_loss"] + weight * terms["kl"], rel=1e-5)
        assert terms["elbo"] == pytest.approx(-(terms["reconstruction_loss"] + terms["kl"]), rel=1e-5)
        assert terms["kl"] > 0.01


def test_free_bits_floor_each_dimensions_batch_mean_kl(mnist_binary):
    x = mnist_binary[:32]
    keras.utils.set_random_seed(0)  # the initial weights, hence which dimensions sit below the floor
    model = VAE(latent_dim=6, hidden_units=(32,), free_bits=0.3, seed=3)
    per_dimension = _gaussian_kl_per_dimension(model.encode(x)).mean(axis=0)
    assert (per_dimension < 0.3).any() and (per_dimension > 0.3).any()  # the floor acts on some, not all
    terms = {k: float(v) for k, v in model.compute_terms(x).items()}
    assert terms["loss"] - terms["reconstruction_loss"] == pytest.approx(np.maximum(per_dimension, 0.3).sum(),
                                                                         rel=1e-4)
    assert terms["kl"] == pytest.approx(per_dimension.sum(), rel=1e-4)  # reported unfloored
    assert terms["elbo"] == pytest.approx(-(terms["reconstruction_loss"] + terms["kl"]), rel=1e-5)
    config = model.get_config()
    assert (config["free_bits"], config["kl_warmup_steps"]) == (0.3, 0)
    assert VAE.from_config(config).free_bits == 0.3


@pytest.mark.parametrize("kwargs, message", [
    ({"kl_warmup_steps": -1}, r"`kl_warmup_steps` must be an integer >= 0. Received: kl_warmup_steps=-1"),
    ({"kl_warmup_steps": 2.5}, r"`kl_warmup_steps` must be an integer >= 0"),
    ({"free_bits": -0.5}, r"`free_bits` must be a finite number >= 0. Received: free_bits=-0.5"),
])
def test_bad_warmup_and_free_bits_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        VAE(latent_dim=2, hidden_units=(8,), **kwargs)


def test_models_without_a_kl_term_refuse_warmup_and_free_bits():
    from keras_vae import AE, VQVAE

    with pytest.raises(ValueError, match=r"AE has no KL term for `kl_warmup_steps` / `free_bits`"):
        AE(latent_dim=2, hidden_units=(8,), free_bits=1.0)
    with pytest.raises(ValueError, match=r"VQVAE has no KL term"):
        VQVAE(num_codes=4, code_dim=2, filters=(4,), kl_warmup_steps=10, seed=0)
    assert "free_bits" not in AE(latent_dim=2, hidden_units=(8,), seed=0).get_config()


@pytest.mark.parametrize("model_class, kwargs", [(VAE, {"hidden_units": (16,)}), ("VQVAE", {})])
def test_polyak_averaging_through_keras_own_optimizer_support(mnist_binary, model_class, kwargs, tmp_path):
    """`use_ema=True`: the optimizer keeps an average of the trained weights
    (only those: a VQ-VAE's prior is not trained by `fit`) and `fit` ends
    with the model holding the average, which is what a `.keras` file saves."""
    if model_class == "VQVAE":
        from keras_vae import VQVAE

        model_class, kwargs = VQVAE, {"code_dim": 4, "num_codes": 8, "filters": (8, 8), "prior_filters": 8,
                                      "prior_layers": 2}
    model = model_class(latent_dim=3, seed=0, **kwargs) if model_class is VAE else model_class(seed=0, **kwargs)
    optimizer = keras.optimizers.Adamax(2e-3, use_ema=True, ema_momentum=0.9)
    model.compile(optimizer=optimizer)
    before = [v.numpy() for v in model._trained_variables()]
    model.fit(mnist_binary[:64], batch_size=16, epochs=2, verbose=0)
    trained = model._trained_variables()
    averages = optimizer._model_variables_moving_average  # noqa: SLF001 - the optimizer's own record
    assert len(averages) == len(trained)
    if model_class is VAE:  # every weight is trained
        assert len(trained) == len(model.trainable_weights)
    else:  # the prior is trained in its own phase
        assert len(trained) < len(model.trainable_weights)
    for variable, start in zip(trained, before):
        average = averages[optimizer._get_variable_index(variable)]  # noqa: SLF001
        np.testing.assert_array_equal(variable.numpy(), average.numpy())  # the model holds the average
        assert not np.array_equal(variable.numpy(), start)
    model.save(tmp_path / "m.keras")
    restored = keras.models.load_model(tmp_path / "m.keras")
    assert restored.optimizer.use_ema and restored.optimizer.ema_momentum == 0.9
    for a, b in zip(restored.weights, model.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
