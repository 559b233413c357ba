"""The importance-weighted log-likelihood estimator (`score`, `log_likelihood`,
`evaluate(iw_samples=k)`), checked against a model whose log p(x) is known
in closed form: a linear-Gaussian VAE, x = W z + b + sigma * noise, z ~ N(0, I),
so p(x) = N(b, W W^T + sigma^2 I). With orthogonal columns in W the exact
posterior is a diagonal Gaussian an encoder can express."""

import keras
import numpy as np
import pytest
import scipy.stats
import tensorflow as tf

from keras_vae import AE, VQVAE, BaseVAE

D, L, SIGMA = 6, 3, 0.5


def _linear_gaussian(mean_error=0.0, seed=0):
    """The model, its exact log p(x) function; `mean_error` shifts the
    encoder's posterior mean away from the exact one."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(D, D)))
    w = q[:, :L] * np.array([2.0, 1.0, 0.5])  # orthogonal columns
    b = rng.normal(size=D)
    d = (w**2).sum(0)  # W^T W = diag(d)
    post_var = 1.0 / (1.0 + d / SIGMA**2)
    a = (post_var[:, None] * w.T) / SIGMA**2  # posterior mean = a (x - b)
    raw_scale = np.log(np.expm1(np.sqrt(post_var) - 1e-5))  # softplus^-1, minus the floor

    encoder = keras.Sequential([keras.Input((D,)), keras.layers.Dense(2 * L)])
    encoder.layers[0].set_weights([
        np.concatenate([a.T, np.zeros((D, L))], 1).astype("float32"),
        np.concatenate([-a @ b + mean_error, raw_scale]).astype("float32"),
    ])
    decoder = keras.Sequential([keras.Input((L,)), keras.layers.Dense(D)])
    decoder.layers[0].set_weights([w.T.astype("float32"), b.astype("float32")])
    model = BaseVAE(encoder, decoder, data_shape=(D,), latent_dim=L, likelihood="gaussian",
                    likelihood_scale=SIGMA, seed=1)
    marginal = scipy.stats.multivariate_normal(b, w @ w.T + SIGMA**2 * np.eye(D))
    return model, marginal.logpdf


@pytest.fixture(scope="module")
def x():
    return np.random.default_rng(1).normal(size=(5, D)).astype("float32") * 2


def test_exact_posterior_gives_log_p_x_for_any_k_and_chunking(x):
    model, log_p = _linear_gaussian()
    for k, rows in ((1, 8192), (7, 8192), (51, 10), (50, 5)):  # 10 // 5 = 2 per chunk: 26 / 25 chunks
        model.score_rows = rows
        scores = model.score(x, num_samples=k)
        # Every importance weight equals p(x): the estimate is exact.
        np.testing.assert_allclose(scores["log_likelihood"], log_p(x), atol=2e-4)
        np.testing.assert_allclose(scores["elbo"], log_p(x), atol=2e-4)


def test_approximate_posterior_bounds_tighten_towards_log_p_x(x):
    model, log_p = _linear_gaussian(mean_error=0.3)
    model.score_rows = 64  # many chunks, the last one partial
    truth = log_p(x)
    k1, k1000 = model.score(x, num_samples=1), model.score(x, num_samples=1000)
    gap_elbo = truth - k1000["elbo"]
    gap_iw = truth - k1000["log_likelihood"]
    # ELBO gap = KL(q || p(z|x)) = 0.5 * 0.3^2 * sum(1 / post_var) = 1.08 nats here.
    np.testing.assert_allclose(gap_elbo, 1.08, atol=0.1)
    # The IWAE bound with k = 1000 closes most of it (per example within its
    # Monte Carlo error, on average within a tenth).
    assert np.all(np.abs(gap_iw) < 0.2) and abs(gap_iw.mean()) < 0.1
    np.testing.assert_array_equal(k1["log_likelihood"], k1["elbo"])  # k = 1: both are one log-weight
    # Same seed, same numbers; another seed, other draws.
    np.testing.assert_array_equal(model.score(x, 1000)["log_likelihood"], k1000["log_likelihood"])
    assert not np.array_equal(model.score(x, 1000, seed=3)["log_likelihood"], k1000["log_likelihood"])


def test_evaluate_reports_nll_and_bits_per_dim_only_when_asked(x):
    model, log_p = _linear_gaussian(mean_error=0.3)
    model.compile()
    logs = model.evaluate(x, batch_size=5, iw_samples=2000, return_dict=True, verbose=0)
    assert logs["nll"] == pytest.approx(-log_p(x).mean(), abs=0.1)
    assert logs["bits_per_dim"] == pytest.approx(logs["nll"] / (D * np.log(2)), rel=1e-6)
    assert logs["elbo"] < -logs["nll"]
    plain = model.evaluate(x, batch_size=5, return_dict=True, verbose=0)
    assert set(plain) == {"loss", "elbo", "reconstruction_loss", "kl"}
    with pytest.raises(ValueError, match="`iw_samples` must be a positive integer. Received: iw_samples=0"):
        model.evaluate(x, iw_samples=0)


def test_models_without_a_density_refuse_to_score(mnist_binary):
    ae = AE(latent_dim=4, hidden_units=(16,), seed=0)
    with pytest.raises(ValueError, match="AE defines no density.*reconstruction log-likelihood"):
        ae.score(mnist_binary[:2])
    ae.compile()
    with pytest.raises(ValueError, match="AE defines no density"):
        ae.evaluate(mnist_binary[:2], iw_samples=5)
    vq = VQVAE(num_codes=8, code_dim=4, filters=(8, 16), seed=0)
    with pytest.raises(ValueError, match=r"VQVAE.score needs the learned prior.*fit_prior"):
        vq.score(mnist_binary[:2])


def test_vq_vae_score_is_decoder_plus_prior_log_prob(mnist_binary):
    vq = VQVAE(num_codes=8, code_dim=4, filters=(8, 16), likelihood="bernoulli", seed=0)
    vq.compile()
    vq.fit_prior(mnist_binary[:32], epochs=1, batch_size=16, verbose=0)
    x = mnist_binary[:4]
    codes = vq.encode_indices(x)
    expected = vq.decode_indices(codes).log_prob(x) + vq.pixelcnn.log_prob(codes)
    scores = vq.score(x, num_samples=3)
    np.testing.assert_allclose(scores["log_likelihood"], expected, rtol=1e-5)
    np.testing.assert_allclose(scores["elbo"], expected, rtol=1e-5)  # a point posterior: the bound is exact


def test_bad_score_arguments(x):
    model, _ = _linear_gaussian()
    with pytest.raises(ValueError, match="`num_samples` must be a positive integer. Received: num_samples=0"):
        model.score(x, num_samples=0)
    with pytest.raises(ValueError, match="`x` must have shape"):
        model.score(x[:, :2])


def test_evaluate_with_iw_samples_under_two_replicas(x, two_replicas):
    # With the exact posterior every draw gives log p(x), so the replicas'
    # different noise cannot hide a wrong reduction across them.
    with two_replicas.scope():
        model, log_p = _linear_gaussian()
        model.compile()
    data = np.concatenate([x, x[::-1]])[:8]
    ds = tf.data.Dataset.from_tensor_slices(data).batch(4)
    logs = model.evaluate(ds, iw_samples=7, return_dict=True, verbose=0)
    assert logs["nll"] == pytest.approx(-log_p(data).mean(), abs=1e-3)
