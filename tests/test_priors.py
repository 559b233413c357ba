"""The analytic KL used by the ELBO against a seeded Monte Carlo estimate."""

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from keras_vae import priors

tfd = tfp.distributions


def test_analytic_kl_matches_monte_carlo():
    params = tf.random.stateless_normal([3, 8], seed=[1, 2])
    posterior, prior = priors.diagonal_gaussian(params), priors.standard_normal(4)
    analytic = tfd.kl_divergence(posterior, prior)
    z = posterior.sample(200_000, seed=tf.constant([3, 4]))
    monte_carlo = tf.reduce_mean(posterior.log_prob(z) - prior.log_prob(z), 0)
    # Standard error of the MC mean is ~ sqrt(Var/n); 200k draws give < 0.01 nats here.
    np.testing.assert_allclose(monte_carlo, analytic, atol=0.02)
    loc, scale = posterior.mean().numpy(), posterior.stddev().numpy()
    closed_form = 0.5 * np.sum(scale**2 + loc**2 - 1 - 2 * np.log(scale), -1)
    np.testing.assert_allclose(analytic, closed_form, rtol=1e-5)
