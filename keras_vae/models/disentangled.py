"""The disentanglement family: `ConvVAE`s whose KL term is replaced by a
`keras_vae.penalties` layer. Each class names its penalty's arguments; the
step, the objective's other terms and serialization are `BaseVAE`'s.

| model | penalty | metrics besides `loss`, `elbo`, `reconstruction_loss`, `kl` |
|---|---|---|
| `BetaTCVAE` | `TotalCorrelation` | `mutual_information`, `total_correlation`, `dimensionwise_kl` |
| `FactorVAE` | `FactorDiscriminator` | `total_correlation`, `discriminator_loss` |
| `DIPVAE` | `DIPCovariance` | `covariance_off_diagonal`, `covariance_diagonal` |

Their defaults are disentanglement_lib's 64x64 setting: `network="locatello"`,
`filters=(32, 32, 64, 64)`, `kernel_size=4`, 10 latents, Bernoulli pixels.
"""

import keras

from keras_vae import penalties
from keras_vae.models.conv_vae import ConvVAE

#: disentanglement_lib's architecture (Locatello et al. 2019), the family's default.
LOCATELLO = {"data_shape": (64, 64, 1), "latent_dim": 10, "network": "locatello", "filters": (32, 32, 64, 64),
             "kernel_size": 4}


class _PenalizedConvVAE(ConvVAE):
    """A `ConvVAE` built with the penalty `make_penalty(**penalty_args)`."""

    penalty_class = None
    penalty_args = ()
    # Their penalties' precision is not measured: Keras' global policy.
    default_dtype = None

    def __init__(self, **kwargs):
        if "penalty" in kwargs:
            raise ValueError(f"{type(self).__name__} makes its own penalty from "
                             f"{self.penalty_args}. Received: penalty={kwargs['penalty']!r}")
        own = {name: kwargs.pop(name) for name in self.penalty_args if name in kwargs}
        penalty = self.penalty_class(**own, dtype=kwargs.get("dtype"))
        super().__init__(**{**LOCATELLO, **kwargs}, penalty=penalty)

    def get_config(self):
        config = super().get_config()
        config.pop("penalty")
        layer = self.penalty_layer
        return {**config, **{name: getattr(layer, name) for name in self.penalty_args}}


@keras.saving.register_keras_serializable(package="keras_vae")
class BetaTCVAE(_PenalizedConvVAE):
    """beta-TCVAE (Chen et al. 2018): the loss is the reconstruction term plus
    `alpha MI + beta TC + gamma dimension-wise KL`, estimated on the batch
    (`keras_vae.penalties.TotalCorrelation`).

    Args:
        dataset_size: the number of training examples (737,280 for dSprites).
        alpha, beta, gamma: weights of the index-code mutual information,
            the total correlation and the dimension-wise KL.
        estimator: `"mws"` (minibatch-weighted sampling) or `"mss"`
            (minibatch-stratified sampling).
        **kwargs: `ConvVAE` arguments (defaults: disentanglement_lib's
            64x64 architecture, `LOCATELLO`).
    """

    penalty_class = penalties.TotalCorrelation
    penalty_args = ("dataset_size", "alpha", "beta", "gamma", "estimator")

    def __init__(self, dataset_size, alpha=1.0, beta=6.0, gamma=1.0, estimator="mws", **kwargs):
        super().__init__(dataset_size=dataset_size, alpha=alpha, beta=beta, gamma=gamma, estimator=estimator,
                         **kwargs)


@keras.saving.register_keras_serializable(package="keras_vae")
class FactorVAE(_PenalizedConvVAE):
    """FactorVAE (Kim & Mnih 2018): the loss is the ELBO's plus `gamma`
    times the total correlation a discriminator estimates
    (`keras_vae.penalties.FactorDiscriminator`), the discriminator trained
    beside the model by a second optimizer: `compile(optimizer=...,
    discriminator_optimizer=...)` (default Adam(1e-4, beta_1=0.5,
    beta_2=0.9)). A `.keras` file keeps both optimizers' state.

    Args:
        gamma: weight of the total correlation.
        hidden_units: the discriminator's hidden layers (default 6 x 1000).
        **kwargs: `ConvVAE` arguments (defaults: `LOCATELLO`).
    """

    penalty_class = penalties.FactorDiscriminator
    penalty_args = ("gamma", "hidden_units")

    def __init__(self, gamma=35.0, hidden_units=(1000,) * 6, **kwargs):
        super().__init__(gamma=gamma, hidden_units=hidden_units, **kwargs)


@keras.saving.register_keras_serializable(package="keras_vae")
class DIPVAE(_PenalizedConvVAE):
    """DIP-VAE (Kumar et al. 2018), variants I and II: the ELBO's loss plus
    a penalty pulling the covariance of the (aggregate) posterior towards
    the identity (`keras_vae.penalties.DIPCovariance`).

    Args:
        variant: `"i"` (covariance of the posterior means) or `"ii"` (plus
            their mean variance).
        lambda_od, lambda_d: weights of the off-diagonal and diagonal terms
            (`lambda_d=None`: 10 * lambda_od for "i", lambda_od for "ii").
        **kwargs: `ConvVAE` arguments (defaults: `LOCATELLO`).
    """

    penalty_class = penalties.DIPCovariance
    penalty_args = ("variant", "lambda_od", "lambda_d")

    def __init__(self, variant="i", lambda_od=10.0, lambda_d=None, **kwargs):
        super().__init__(variant=variant, lambda_od=lambda_od, lambda_d=lambda_d, **kwargs)
