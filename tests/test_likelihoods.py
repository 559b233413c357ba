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
