"""Each likelihood's log-prob against scipy / numpy."""

import numpy as np
import pytest
from scipy import stats

from keras_vae import likelihoods

SHAPE = (3, 2, 1)
rng = np.random.default_rng(0)
PARAMS = rng.normal(size=(4, *SHAPE)).astype("float32")


def _sum(a):
    return a.reshape(a.shape[0], -1).sum(-1)


def test_bernoulli_matches_scipy():
    x = (rng.random((4, *SHAPE)) > 0.5).astype("float32")
    dist = likelihoods.get("bernoulli", SHAPE).distribution(PARAMS)
    probs = 1 / (1 + np.exp(-PARAMS.astype("float64")))
    np.testing.assert_allclose(dist.log_prob(x), _sum(stats.bernoulli.logpmf(x, probs)), rtol=1e-5)
    np.testing.assert_allclose(dist.mean(), probs, rtol=1e-5)


def test_continuous_bernoulli_matches_closed_form():
    x = rng.random((4, *SHAPE)).astype("float32")
    lam = 1 / (1 + np.exp(-PARAMS.astype("float64")))
    # log C(lam) = log(2 artanh(1 - 2 lam) / (1 - 2 lam))  (Loaiza-Ganem & Cunningham 2019)
    log_norm = np.log(2 * np.arctanh(1 - 2 * lam) / (1 - 2 * lam))
    expected = _sum(log_norm + x * np.log(lam) + (1 - x) * np.log1p(-lam))
    dist = likelihoods.get("continuous_bernoulli", SHAPE).distribution(PARAMS)
    np.testing.assert_allclose(dist.log_prob(x), expected, rtol=1e-4)


@pytest.mark.parametrize("name, scale", [("gaussian", 0.3), ("gaussian_learned_scale", 1.0),
                                         ("gaussian_learned_pixel_scale", 1.0)])
def test_gaussians_match_scipy(name, scale):
    layer = likelihoods.get(name, SHAPE, scale=0.3)
    x = rng.normal(size=(4, *SHAPE)).astype("float32")
    expected = _sum(stats.norm.logpdf(x, loc=PARAMS, scale=scale))
    np.testing.assert_allclose(layer.distribution(PARAMS).log_prob(x), expected, rtol=1e-4)


def test_learned_scales_are_trainable_weights():
    assert likelihoods.get("gaussian", SHAPE).trainable_weights == []
    assert likelihoods.get("gaussian_learned_scale", SHAPE).trainable_weights[0].shape == ()
    assert likelihoods.get("gaussian_learned_pixel_scale", SHAPE).trainable_weights[0].shape == SHAPE


def test_unknown_name_lists_valid_ones():
    with pytest.raises(ValueError, match="`likelihood` must be one of .*'bernoulli'.*Received: likelihood='poisson'"):
        likelihoods.get("poisson", SHAPE)


@pytest.mark.parametrize("scale", [0.0, -1.0, float("nan"), "sometimes"])
def test_bad_gaussian_scale(scale):
    with pytest.raises(ValueError, match="`scale` must be"):
        likelihoods.Gaussian(SHAPE, scale=scale)


# ---------------------------------------------------------------------- #
# 8-bit likelihoods
# ---------------------------------------------------------------------- #
LEVELS = np.arange(256, dtype="float32")


def _logistic_masses(loc, scale):
    """numpy/scipy masses of 0..255 under a logistic, edge bins open: `[..., 256]`."""
    edges = stats.logistic.cdf((LEVELS[:-1] + 0.5 - loc[..., None]) / scale[..., None])
    cdf = np.concatenate([np.zeros_like(edges[..., :1]), edges, np.ones_like(edges[..., :1])], -1)
    return np.diff(cdf, axis=-1)


@pytest.mark.parametrize("components", [1, 3])
def test_discretized_logistic_masses_sum_to_one_and_match_scipy(components):
    shape = (2, 3, 2)  # two channels: the parameter layout is per channel
    layer = likelihoods.DiscretizedLogistic(shape, num_components=components)
    assert layer.params_shape == (2, 3, 2 * layer.params_per_element)
    assert layer.params_per_element == (2 if components == 1 else 3 * components)
    params = rng.normal(size=(4, *layer.params_shape)).astype("float32")
    params[0, 0, 0] = -8.0  # a scale at the floor: nearly all mass in one bin
    dist = layer.distribution(params)
    per_pixel = dist.distribution  # `Independent`'s per-element distribution, batch [4, 2, 3, 2]
    probs = np.stack([per_pixel.prob(np.full((4, *shape), v, "float32")).numpy() for v in LEVELS], -1)
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=2e-5)

    p = params.reshape(4, 2, 3, 2, layer.params_per_element).astype("float64")
    if components == 1:
        weights, raw_loc, raw_scale = np.ones(p.shape[:-1] + (1,)), p[..., :1], p[..., 1:]
    else:
        logits = p[..., :components]
        weights = np.exp(logits - logits.max(-1, keepdims=True))
        weights /= weights.sum(-1, keepdims=True)
        raw_loc, raw_scale = p[..., components:2 * components], p[..., 2 * components:]
    loc, scale = 127.5 * (1 + raw_loc), 127.5 * np.exp(np.maximum(raw_scale, -7))
    want = (weights[..., None] * _logistic_masses(loc, scale)).sum(-2)  # [4, 2, 3, 2, 256]
    np.testing.assert_allclose(probs, want, rtol=2e-3, atol=1e-6)

    x = rng.integers(0, 256, size=(4, *shape)).astype("float32")
    with np.errstate(divide="ignore"):
        want_log = np.log(np.take_along_axis(want, x[..., None].astype(int), -1)[..., 0])
    log_prob = dist.log_prob(x).numpy()
    # Row 0 has a pixel whose mass underflows float64 in the reference; TFP's
    # log-CDF arithmetic keeps it finite.
    np.testing.assert_allclose(log_prob[1:], _sum(want_log)[1:], rtol=1e-3)
    assert np.isfinite(log_prob[0]) and log_prob[0] < log_prob[1:].min()
    np.testing.assert_allclose(dist.mean().numpy(), (want * LEVELS).sum(-1), rtol=1e-3, atol=1e-2)
    sample = dist.sample(seed=1).numpy()
    assert np.array_equal(sample, np.round(sample)) and sample.min() >= 0 and sample.max() <= 255


def test_discretized_logistic_refuses_values_outside_its_support():
    layer = likelihoods.get("discretized_logistic", SHAPE)
    assert layer.support_violation(np.full(SHAPE, 12.0)) is None
    for bad in (12.5, 256.0, -1.0):
        problem = layer.support_violation(np.full(SHAPE, bad))
        assert problem is not None and "not integers in [0, 255]" in problem and "values='8bit'" in problem
    with pytest.raises(ValueError, match=r"`num_components` must be a positive integer\. Received: num_components=0"):
        likelihoods.DiscretizedLogistic(SHAPE, num_components=0)


@pytest.mark.parametrize("likelihood, words", [
    ("discretized_logistic", "keep their values 0..255"),
    ("dequantized_gaussian", "add uniform noise in \\[0, 1\\)"),
    ("bernoulli", "Binarize integer images"),
    ("gaussian", "Scale integer images to \\[0, 1\\]"),
])
def test_a_model_refuses_integer_images_with_the_hint_of_its_likelihood(likelihood, words):
    from keras_vae import VAE

    model = VAE(latent_dim=2, hidden_units=(8,), likelihood=likelihood, seed=0)
    pixels = np.random.default_rng(0).integers(0, 256, (4, 28, 28, 1)).astype("uint8")
    with pytest.raises(ValueError, match=f"`x` must have a floating dtype .*{words}.*Received: x.dtype=uint8"):
        model.encode(pixels)
    if likelihood == "discretized_logistic":  # the same values as floats are accepted, halves are not
        assert model.encode(pixels.astype("float32")).mean().shape == (4, 2)
        with pytest.raises(ValueError, match="`x` must lie in the support .* DiscretizedLogistic likelihood"):
            model.encode(pixels.astype("float32") + 0.5)


def test_dequantized_gaussian_is_a_density_in_pixel_units():
    layer = likelihoods.get("dequantized_gaussian", SHAPE)
    assert layer.values == "dequantized" and layer.value_scale == 256.0
    v = rng.uniform(0, 256, size=(4, *SHAPE)).astype("float32")
    s = np.log1p(np.exp(0.5413)) + 1e-4  # the initial learned scale, 1.0
    want = stats.norm.logpdf(v / 256.0, loc=PARAMS, scale=s) - np.log(256.0)
    np.testing.assert_allclose(layer.distribution(PARAMS).log_prob(v).numpy(), _sum(want), rtol=1e-5)
    # A density on [0, 256): integrated over one unit bin it is <= 1 everywhere
    # (the mass of a bin under the dequantized model); a midpoint-rule check.
    grid = (np.arange(256 * 64, dtype="float32")[:, None, None, None] + 0.5) / 64
    dens = np.exp(layer.distribution(np.zeros(SHAPE, "float32")).distribution.log_prob(
        np.broadcast_to(grid, (len(grid), *SHAPE))).numpy())
    np.testing.assert_allclose(dens.sum(0) / 64, stats.norm.cdf(1, 0, s) - 0.5, rtol=1e-3)
    assert "outside [0, 256)" in layer.support_violation(np.full(SHAPE, 256.0))


def test_likelihood_layers_by_object_and_value_conventions():
    assert likelihoods.get("bernoulli", SHAPE).values == "binary"
    assert likelihoods.get("gaussian", SHAPE).values == "unit"
    assert likelihoods.get("discretized_logistic_mixture", SHAPE).num_components == 5
    layer = likelihoods.DiscretizedLogistic(SHAPE, num_components=2)
    assert likelihoods.get(layer, SHAPE) is layer
    with pytest.raises(ValueError, match=r"`likelihood` must model data of shape \(4, 4, 1\)"):
        likelihoods.get(layer, (4, 4, 1))
