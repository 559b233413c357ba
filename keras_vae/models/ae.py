"""`AE`: a deterministic autoencoder on the same base, the baseline VAEs are
compared against."""

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from keras_vae.models.vae import VAE

tfd = tfp.distributions


@keras.saving.register_keras_serializable(package="keras_vae")
class AE(VAE):
    """A plain autoencoder with the `VAE`'s MLP networks.

    The "posterior" is a point mass at the encoder's output and there is no
    KL term: the loss is the reconstruction loss `-log p(x | z)` alone, so
    `fit` / `evaluate` report `loss` and `reconstruction_loss`. `sample`
    still feeds the decoder draws from the standard-normal prior, which shows
    why an unregularised latent space does not generate.

    Args: as `VAE`.
    """

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
            "AE defines no density over x (its latent is a point, trained against no prior), so "
            "it has no ELBO and no likelihood estimate to score with. Score inputs by their "
            "reconstruction log-likelihood instead: `model.decode(model.latent(x)).log_prob(x)`. "
            "Received: a call to score / log_likelihood / evaluate(iw_samples=...)"
        )
