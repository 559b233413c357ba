"""Priors p(z) and the diagonal-Gaussian posterior family q(z | x).

Prior and posterior are both `Independent(Normal, 1)` so that
`tfd.kl_divergence(posterior, prior)` resolves to the registered analytic KL
(`MultivariateNormalDiag` vs `Independent(Normal)` has none).
"""

import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions

_MIN_SCALE = 1e-5


def standard_normal(latent_dim):
    """N(0, I) over `latent_dim` dimensions, float32."""
    zeros = tf.zeros([latent_dim], tf.float32)
    return tfd.Independent(tfd.Normal(loc=zeros, scale=tf.ones_like(zeros)), 1)


def diagonal_gaussian(params):
    """q(z | x) = N(loc, diag(scale^2)) from encoder outputs `[..., 2 * latent_dim]`.

    The first half of the last axis is the mean, the second half passes through
    `softplus` (plus a small floor) to give the standard deviation.
    """
    loc, raw_scale = tf.split(params, 2, axis=-1)
    scale = tf.nn.softplus(raw_scale) + _MIN_SCALE
    return tfd.Independent(tfd.Normal(loc=loc, scale=scale), 1)
