"""Posterior and prior components: the autoregressive network, the flows
built on it, the Monte Carlo KL, the VampPrior, serialization and bad input."""

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from model_test_case import ModelTests
from scipy.special import logsumexp

from keras_vae import VAE, ConvVAE, posteriors, priors
from keras_vae.layers.autoregressive import MaskedAutoregressiveNetwork

tfd = tfp.distributions


def _randomize(layer, seed=0, scale=0.5):
    """Random weights everywhere (the output layers start at zero, which would
    make every check below trivially true)."""
    if not layer.built:
        layer.build(None)
    rng = np.random.default_rng(seed)
    for v in layer.weights:
        v.assign(rng.normal(0.0, scale, v.shape).astype("float32"))
    return layer


def test_masked_network_is_autoregressive():
    network = _randomize(MaskedAutoregressiveNetwork(5, (16, 16), params=2, context_size=3))
    rng = np.random.default_rng(1)
    x, context = rng.normal(size=(4, 5)).astype("float32"), rng.normal(size=(4, 3)).astype("float32")
    out = network(x, context).numpy()
    assert out.shape == (4, 5, 2)
    for i in range(5):
        changed = x.copy()
        changed[:, i:] = rng.normal(size=(4, 5 - i))
        moved = network(changed, context).numpy()
        np.testing.assert_array_equal(moved[:, : i + 1], out[:, : i + 1])  # outputs 0..i see inputs < i only
        if i < 4:
            assert not np.allclose(moved[:, i + 1:], out[:, i + 1:])  # later outputs do see input i
    assert np.all(network(x, context + 1.0).numpy() != out)  # the context reaches every output


def _flows(latent_dim=3, seed=0):
    """`{name: bijector}` with random weights: the IAF posterior's (conditioned
    on a context) and the MAF prior's."""
    iaf = _randomize(posteriors.get(posteriors.IAF(latent_dim, num_steps=2, hidden_units=(8,), context_size=2),
                                    latent_dim), seed)
    params = tf.constant(np.random.default_rng(seed).normal(size=(1, iaf.params_size())), tf.float32)
    maf = _randomize(priors.get(priors.MAFPrior(latent_dim, num_steps=2, hidden_units=(8,)), latent_dim, (4,)), seed)
    return {"iaf": iaf.distribution(params).bijector, "maf": maf.distribution().bijector}


@pytest.mark.parametrize("name", ["iaf", "maf"])
def test_flows_invert_and_their_log_det_matches_a_numerical_jacobian(name):
    bijector = _flows()[name]
    z = tf.constant(np.random.default_rng(2).normal(size=(1, 3)), tf.float32)
    y = bijector.forward(z)
    np.testing.assert_allclose(bijector.inverse(y), z, atol=1e-5)
    np.testing.assert_allclose(bijector.forward(bijector.inverse(z)), z, atol=1e-5)
    # Central differences, one input coordinate at a time.
    eps = 1e-2
    columns = []
    for j in range(3):
        step = np.zeros((1, 3), "float32")
        step[0, j] = eps
        columns.append((bijector.forward(z + step) - bijector.forward(z - step)).numpy()[0] / (2 * eps))
    jacobian = np.stack(columns, axis=1)
    _, log_det = np.linalg.slogdet(jacobian.astype("float64"))
    assert float(bijector.forward_log_det_jacobian(z, event_ndims=1)[0]) == pytest.approx(log_det, abs=2e-3)
    assert float(bijector.inverse_log_det_jacobian(y, event_ndims=1)[0]) == pytest.approx(-log_det, abs=2e-3)


def _flow_model(**kwargs):
    keras.utils.set_random_seed(3)
    return VAE(latent_dim=3, hidden_units=(16,), seed=0, **kwargs)


def test_iaf_log_q_comes_from_the_forward_pass_and_matches_the_density(mnist_binary):
    model = _flow_model(posterior=posteriors.IAF(3, num_steps=2, hidden_units=(8,), context_size=4))
    _randomize(model.posterior_layer, seed=4, scale=0.3)
    posterior = model.encode(mnist_binary[:4])
    network = model.posterior_layer.networks[0]
    calls = []
    original = network.call
    network.call = lambda *a, **k: calls.append(1) or original(*a, **k)
    try:
        z, log_q = posterior.experimental_sample_and_log_prob(7, seed=tf.constant([1, 2]))
        forward_calls = len(calls)
        # A copy of z, which TFP's bijector cache does not know: its log_prob
        # goes through the sequential inverse, one network pass per dimension.
        reference = posterior.log_prob(tf.constant(z.numpy()))
    finally:
        del network.call
    assert forward_calls == 1  # one pass of the first step's network serves the sample and its log q
    assert len(calls) - forward_calls >= 3
    np.testing.assert_allclose(log_q, reference, atol=1e-4)


@pytest.mark.parametrize("kwargs", [
    {"posterior": posteriors.IAF(3, num_steps=2, hidden_units=(8,), context_size=4)},
    {"prior": priors.MAFPrior(3, num_steps=2, hidden_units=(8,))},
])
def test_monte_carlo_kl_of_flows_against_a_large_sample_reference(mnist_binary, kwargs):
    x = mnist_binary[:4]
    model = _flow_model(num_samples=20_000, **kwargs)
    for layer in (model.posterior_layer, model.prior_layer):
        _randomize(layer, seed=5, scale=0.3)
    posterior, prior = model.encode(x), model.prior
    with pytest.raises(NotImplementedError):
        tfd.kl_divergence(posterior, prior)
    # The reference: TFP's own sampler and densities (the posterior's log_prob
    # through its inverse), 200,000 draws.
    z = tf.constant(posterior.sample(200_000, seed=tf.constant([7, 8])).numpy())  # a copy: not in TFP's cache
    reference = float(tf.reduce_mean(posterior.log_prob(z) - prior.log_prob(z)))
    assert float(model.compute_terms(x)["kl"]) == pytest.approx(reference, abs=0.03)
    assert reference > 0.1  # not a trivial case


def test_vamp_prior_log_prob_is_the_numpy_mixture(mnist_binary):
    model = _flow_model(prior=priors.VampPrior(3, (28, 28, 1), num_components=5))
    model.initialize_from_data(mnist_binary[:3])  # 5 pseudo-inputs from 3 images: repeated
    np.testing.assert_array_equal(model.prior_layer.pseudo_inputs.numpy()[[0, 1, 2, 3, 4]],
                                  mnist_binary[[0, 1, 2, 0, 1]])
    components = model.encode(model.prior_layer.pseudo_inputs)
    loc, scale = components.mean().numpy().astype("float64"), components.stddev().numpy().astype("float64")
    z = np.random.default_rng(0).normal(size=(6, 3))
    log_n = -0.5 * (((z[:, None] - loc[None]) / scale[None]) ** 2 + 2 * np.log(scale[None]) + np.log(2 * np.pi))
    expected = logsumexp(log_n.sum(-1), axis=1) - np.log(5)
    np.testing.assert_allclose(model.prior.log_prob(z.astype("float32")), expected, rtol=1e-5)
    assert model.prior.sample(4, seed=tf.constant([0, 1])).shape == (4, 3)


def test_components_round_trip_without_custom_objects(mnist_binary, tmp_path):
    model = ConvVAE(latent_dim=4, filters=(4, 8), seed=0, posterior=posteriors.IAF(4, hidden_units=(16,)),
                    prior="vamp")
    model.compile()
    model.fit(mnist_binary[:32], batch_size=16, epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    restored = keras.models.load_model(tmp_path / "m.keras", safe_mode=True)
    assert isinstance(restored.posterior_layer, posteriors.IAF)
    assert restored.posterior_layer.hidden_units == (16,)
    assert isinstance(restored.prior_layer, priors.VampPrior)
    x = mnist_binary[:4]
    np.testing.assert_array_equal(restored.score(x, 10)["log_likelihood"], model.score(x, 10)["log_likelihood"])
    np.testing.assert_array_equal(restored.sample(2, seed=1), model.sample(2, seed=1))


def test_free_bits_floor_the_kl_as_one_group_without_a_per_dimension_formula(mnist_binary):
    x = mnist_binary[:8]
    model = _flow_model(prior="vamp", free_bits=50.0)
    terms = model.compute_terms(x)
    assert float(terms["loss"] - terms["reconstruction_loss"]) == pytest.approx(50.0 * 3)
    assert float(terms["elbo"]) == pytest.approx(-float(terms["reconstruction_loss"] + terms["kl"]))


def test_bad_components_are_named():
    with pytest.raises(ValueError, match=r"`posterior` must be one of \('diagonal_gaussian', 'iaf'\).*"
                                         r"Received: posterior='flow'"):
        VAE(posterior="flow")
    with pytest.raises(ValueError, match=r"`prior` must be one of \('standard_normal', 'vamp', 'maf'\).*"
                                         r"Received: prior='gmm'"):
        VAE(prior="gmm")
    for make, arg in [(lambda: posteriors.IAF(4, num_steps=0), "num_steps"),
                      (lambda: priors.MAFPrior(4, num_steps=-1), "num_steps"),
                      (lambda: posteriors.IAF(1), "latent_dim"),
                      (lambda: posteriors.IAF(4, gate_bias="high"), "gate_bias"),
                      (lambda: posteriors.IAF(4, gate_bias=float("inf")), "gate_bias"),
                      (lambda: priors.VampPrior(4, (28, 28, 1), num_components=0), "num_components"),
                      (lambda: priors.VampPrior(4, (28, 28, 1), value_scale=0), "value_scale"),
                      (lambda: VAE(latent_dim=4, posterior=posteriors.IAF(3)), "posterior"),
                      (lambda: VAE(latent_dim=4, prior=priors.MAFPrior(3)), "prior"),
                      (lambda: VAE(latent_dim=4, prior=priors.VampPrior(4, (14, 14, 1))), "prior")]:
        with pytest.raises(ValueError, match=f"`{arg}` must .*Received: {arg}="):
            make()
    from keras_vae import AE

    with pytest.raises(ValueError, match="AE has its own latent and takes no `posterior` / `prior`"):
        AE(prior="vamp")


def test_vamp_pseudo_inputs_start_in_the_range_of_the_likelihoods_values():
    for likelihood, top in [("bernoulli", 1.0), ("discretized_logistic", 255.0), ("dequantized_gaussian", 256.0)]:
        model = VAE(latent_dim=2, hidden_units=(8,), likelihood=likelihood, prior="vamp", seed=0)
        model.build()
        inputs = keras.ops.convert_to_numpy(model.prior_layer.pseudo_inputs)
        assert model.prior_layer.value_scale == top and inputs.min() >= 0 and inputs.max() < top
        assert inputs.max() > 0.9 * top  # 50 x 784 uniform draws fill the range
        config = model.prior_layer.get_config()
        assert priors.VampPrior.from_config(config).value_scale == top
    del config["value_scale"]  # a config saved before the option existed
    assert priors.VampPrior.from_config(config).value_scale == 1.0


class TestIAFWithVampPrior(ModelTests):
    model_class = VAE
    init_kwargs = {"latent_dim": 4, "hidden_units": (32,), "prior": "vamp"}

    def make_model(self, **overrides):
        latent_dim = overrides.get("latent_dim", 4)
        if latent_dim >= 2:  # a fresh posterior layer for every model
            overrides = {"posterior": posteriors.IAF(latent_dim, hidden_units=(16,), context_size=8), **overrides}
        return super().make_model(**overrides)


# ---------------------------------------------------------------- IWAE
def _iwae_pair(objective, k, **kwargs):
    """An ELBO model and an IWAE model with the same weights and noise."""
    keras.utils.set_random_seed(0)
    elbo = VAE(latent_dim=3, hidden_units=(16,), seed=4, num_samples=k, **kwargs)
    iwae = VAE(latent_dim=3, hidden_units=(16,), seed=4, num_samples=k, objective=objective, **kwargs)
    iwae.set_weights(elbo.get_weights())
    return elbo, iwae


def test_iwae_bound_is_at_least_the_elbo_and_equals_it_at_k_1(mnist_binary):
    x = mnist_binary[:16]
    _, iwae = _iwae_pair("iwae", 50)
    terms = iwae.compute_terms(x)
    assert float(terms["loss"]) == pytest.approx(-float(terms["iwae"]))
    # The same 50 draws: log-mean-exp of the log-weights >= their mean (the MC ELBO).
    elbo_mc = -(float(terms["reconstruction_loss"]) + float(terms["kl"]))
    assert float(terms["iwae"]) > elbo_mc + 0.5
    # k = 1: the bound is the single-draw ELBO with a Monte Carlo KL, exactly.
    _, one = _iwae_pair("iwae", 1)
    posterior = one.encode(x)
    one._eval_step.assign(0)
    z = one.sample_posterior(posterior, 1)
    one._eval_step.assign(0)
    single = one.decode(z[0]).log_prob(x) + one.prior.log_prob(z[0]) - posterior.log_prob(z[0])
    np.testing.assert_allclose(float(one.compute_terms(x)["iwae"]), float(tf.reduce_mean(single)), rtol=1e-6)
    # ... whose expectation is the ELBO of the analytic-KL objective.
    many = VAE(latent_dim=3, hidden_units=(16,), seed=4, num_samples=1, objective="iwae")
    many.set_weights(one.get_weights())
    draws = [float(many.compute_terms(x)["iwae"]) for _ in range(100)]
    elbo_model = VAE(latent_dim=3, hidden_units=(16,), seed=4, num_samples=2000)
    elbo_model.set_weights(one.get_weights())
    analytic = float(elbo_model.compute_terms(x)["elbo"])
    assert np.mean(draws) == pytest.approx(analytic, abs=4 * np.std(draws) / np.sqrt(len(draws)) + 0.05)


def test_dreg_changes_only_the_encoder_gradient(mnist_binary):
    x = mnist_binary[:16]
    _, iwae = _iwae_pair("iwae", 10)
    _, dreg = _iwae_pair("iwae_dreg", 10)
    gradients = {}
    for name, model in (("iwae", iwae), ("dreg", dreg)):
        model._eval_step.assign(0)
        with tf.GradientTape(persistent=True) as tape:
            terms = model.compute_terms(x)
        index = {id(v): i for i, v in enumerate(model.trainable_variables)}  # the two models' layers share an order
        gradients[name] = {
            index[id(v)]: tape.gradient(terms[group], v)
            for group, variables in model._loss_groups() for v in variables
        }
    encoder = {i for i, v in enumerate(dreg.trainable_variables) if any(v is e for e in dreg.encoder.weights)}
    assert encoder and set(gradients["iwae"]) == set(gradients["dreg"]) == set(range(len(dreg.trainable_variables)))
    for i, g in gradients["iwae"].items():
        if i in encoder:
            assert not np.allclose(g, gradients["dreg"][i]), i
        else:
            np.testing.assert_allclose(g, gradients["dreg"][i], rtol=1e-5, atol=1e-7, err_msg=str(i))
    dreg.compile(optimizer=keras.optimizers.Adam(3e-3))
    history = dreg.fit(mnist_binary[:256], batch_size=32, epochs=3, verbose=0).history
    assert history["loss"][-1] < history["loss"][0] - 10  # it trains
    assert history["iwae"][-1] >= history["elbo"][-1]


def test_bad_objectives_are_named():
    with pytest.raises(ValueError, match=r"`objective` must be one of \('elbo', 'iwae', 'iwae_dreg'\).*"
                                         r"Received: objective='vimco'"):
        VAE(objective="vimco")
    with pytest.raises(ValueError, match="`num_samples` must .*Received: num_samples=0"):
        VAE(objective="iwae", num_samples=0)
    with pytest.raises(ValueError, match="needs a diagonal-Gaussian posterior.*Received: objective='iwae_dreg'"):
        VAE(latent_dim=4, objective="iwae_dreg", posterior="iaf")
    with pytest.raises(ValueError, match="IWAE bound does not have.*Received: objective='iwae'"):
        VAE(objective="iwae", free_bits=0.5)
    from keras_vae import BetaVAE

    with pytest.raises(ValueError, match="BetaVAE weights or replaces the ELBO's KL term.*Received: objective='iwae'"):
        BetaVAE(beta=4.0, objective="iwae")


class TestMAFPriorWithDReG(ModelTests):
    model_class = VAE
    init_kwargs = {"latent_dim": 4, "hidden_units": (32,), "objective": "iwae_dreg", "num_samples": 3}

    def make_model(self, **overrides):
        latent_dim = overrides.get("latent_dim", 4)
        if latent_dim >= 2:  # a fresh prior layer for every model
            overrides = {"prior": priors.MAFPrior(latent_dim, hidden_units=(16,)), **overrides}
        return super().make_model(**overrides)
