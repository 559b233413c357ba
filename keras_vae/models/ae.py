"""`AE` and `ConvAE`: deterministic autoencoders on the same base, the
baselines VAEs are compared against: `VAE`'s and `ConvVAE`'s networks with a
point latent (`PointLatent`)."""

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from keras_vae.models.conv_vae import ConvVAE
from keras_vae.models.vae import VAE

tfd = tfp.distributions


class PointLatent:
    """What makes a model of this package a plain autoencoder: the
    "posterior" is a point mass at the encoder's output and there is no KL
    term, so the loss is the reconstruction loss `-log p(x | z)` alone and
    `fit` / `evaluate` report `loss` and `reconstruction_loss`. `sample`
    still feeds the decoder draws from N(0, I), which shows why an
    unregularised latent space does not generate (`fit_sampler` fits one
    that does). Mixed in before a VAE class, whose networks it keeps."""

    metric_names = ("loss", "reconstruction_loss")

    params_per_latent = 1  # a point, no scale
    defines_density = False  # so `VAE.from_preset` refuses an AE entry
    has_kl_term = False

    def make_posterior(self, params):
        return tfd.Independent(tfd.Deterministic(loc=params), 1)

    def latent_terms(self, x, training=False):
        return self._posterior(x, training).mean()[None], {"penalty": tf.constant(0.0)}

    def _check_scorable(self):
        raise ValueError(
            f"{type(self).__name__} defines no density over x (its latent is a point, trained against no prior), "
            "so it has no ELBO and no likelihood estimate to score with. Score inputs by their "
            "reconstruction log-likelihood instead: `model.decode(model.latent(x)).log_prob(x)`. "
            "Received: a call to score / log_likelihood / evaluate(iw_samples=...)"
        )


@keras.saving.register_keras_serializable(package="keras_vae")
class AE(PointLatent, VAE):
    """A plain autoencoder with the `VAE`'s MLP networks (`PointLatent`).

    Args: as `VAE`.
    """


@keras.saving.register_keras_serializable(package="keras_vae")
class ConvAE(PointLatent, ConvVAE):
    """A plain autoencoder with `ConvVAE`'s networks, conv or residual
    (`PointLatent`): the baseline of a conv VAE with the same networks.

    Args: as `ConvVAE`.
    """

    # Not measured in bfloat16: Keras' global policy.
    default_dtype = None
