"""The zoo's models, all sharing `BaseVAE`'s training contract."""

from keras_vae.models.ae import AE, ConvAE
from keras_vae.models.base import BaseVAE
from keras_vae.models.beta_vae import BetaVAE
from keras_vae.models.conv_vae import ConvVAE
from keras_vae.models.disentangled import DIPVAE, BetaTCVAE, FactorVAE
from keras_vae.models.vae import VAE
from keras_vae.models.vq_vae import VQVAE

__all__ = ["AE", "BaseVAE", "BetaTCVAE", "BetaVAE", "ConvAE", "ConvVAE", "DIPVAE", "FactorVAE", "VAE", "VQVAE"]
