"""Latent penalties: what the loss adds to the reconstruction term in place
of the ELBO's KL, for the disentanglement family.

A penalty is a small Keras layer beside the posteriors and priors. The model
calls `terms(posterior, prior, z, kl, seed)` once per batch and adds
`terms["penalty"]` to the reconstruction loss; the other entries (named in
`metric_names`) are reported by `fit` / `evaluate`. The model's `elbo` stays
the true, unweighted bound, so runs with different weights remain comparable.

| penalty | the loss adds | paper |
|---|---|---|
| `WeightedKL` | `beta KL` | Higgins et al. 2017 (beta-VAE) |
| `TotalCorrelation` | `alpha MI + beta TC + gamma dimension-wise KL` | Chen et al. 2018 (beta-TCVAE) |
| `FactorDiscriminator` | `KL + gamma TC`, TC from a discriminator trained beside the model | Kim & Mnih 2018 (FactorVAE) |
| `DIPCovariance` | `KL + lambda_od sum_{i!=j} C_ij^2 + lambda_d sum_i (C_ii - 1)^2` | Kumar et al. 2018 (DIP-VAE) |

The three estimate statistics of the aggregate posterior from the batch, so
they see the global batch (`keras_vae.distribute.global_batch`): under a
`tf.distribute` strategy a step computes what it would on one device.
They use the first of the model's `num_samples` draws of z and need a
diagonal-Gaussian posterior (`TotalCorrelation`, `DIPCovariance`: its mean
and scale). All computations are float32.

    model = keras_vae.ConvVAE(data_shape=(64, 64, 1), latent_dim=10,
                              penalty=keras_vae.penalties.TotalCorrelation(beta=6.0, dataset_size=737280))
"""

import math

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from keras_vae import distribute, validation

tfd = tfp.distributions

#: `TotalCorrelation(estimator=...)`: minibatch-weighted or minibatch-stratified sampling.
ESTIMATORS = ("mws", "mss")
#: `DIPCovariance(variant=...)`.
DIP_VARIANTS = ("i", "ii")


@keras.saving.register_keras_serializable(package="keras_vae")
class Penalty(keras.layers.Layer):
    """Base class. `build((None, latent_dim))` is called by the model."""

    #: Names of the terms `terms` returns besides `"penalty"`, in order.
    metric_names = ()
    #: Whether `terms` reads the posterior's mean and scale.
    needs_gaussian_posterior = True

    def build(self, input_shape=None):
        self.latent_dim = int(input_shape[-1])
        self.built = True

    def terms(self, posterior, prior, z, kl, seed, training=False):
        """Named scalars: `"penalty"` (added to the loss) and `metric_names`.

        Args:
            posterior: q(z|x) of this replica's batch (`tfd`, event `[D]`).
            prior: p(z).
            z: the model's reparameterised draws, `[S, b, D]`.
            kl: batch-mean KL(q(z|x) || p(z)) (analytic where registered).
            seed: a stateless seed `[2]`, the same on every replica.
        """
        raise NotImplementedError

    def auxiliary_optimizers(self):
        """`{name: (term, variables, default optimizer)}` of networks trained
        beside the model (see `ObjectiveModel.auxiliary_optimizers`)."""
        return {}


def _first_draw(z):
    return distribute.global_batch(tf.cast(z[0], tf.float32))


def _gaussian_parameters(posterior):
    """The global batch's posterior means and scales, `[B, D]` each."""
    return (distribute.global_batch(tf.cast(posterior.mean(), tf.float32)),
            distribute.global_batch(tf.cast(posterior.stddev(), tf.float32)))


def log_density_matrix(z, loc, scale):
    """`[B, B, D]`: log N(z_i,d; loc_j,d, scale_j,d) for every pair of rows i, j."""
    z, loc, scale = z[:, None, :], loc[None, :, :], scale[None, :, :]
    return -0.5 * (math.log(2 * math.pi) + tf.square((z - loc) / scale)) - tf.math.log(scale)


def stratified_log_weights(batch_size, dataset_size):
    """`[B, B]` log-weights of minibatch-stratified sampling (Chen et al.
    2018, appendix C.2) with M = B - 1: 1/N on the diagonal (the row's own
    example), (N - M) / (N M) at the next row (cyclically), 1/M elsewhere;
    each row sums to 1. `batch_size` may be a tensor (B >= 2)."""
    n = float(dataset_size)
    m = tf.cast(batch_size, tf.float32) - 1.0
    rows = tf.range(batch_size)
    own = tf.cast(tf.equal(rows[:, None], rows[None, :]), tf.float32)
    following = tf.one_hot((rows + 1) % batch_size, batch_size) * (1.0 - own)  # B = 1: no separate next row
    others = 1.0 - own - following
    weights = own / n + following * (n - m) / (n * m) + others / m
    return tf.math.log(weights)


@keras.saving.register_keras_serializable(package="keras_vae")
class WeightedKL(Penalty):
    """beta-VAE's penalty (Higgins et al. 2017): `beta` times the KL, for
    any model (`keras_vae.BetaVAE` is the MLP with this objective built in;
    this gives it to `ConvVAE` and its networks, disentanglement_lib's
    architecture among them).

    Args:
        beta: the KL weight, >= 0 (1: the ELBO).
    """

    needs_gaussian_posterior = False

    def __init__(self, beta=4.0, **kwargs):
        super().__init__(**kwargs)
        self.beta = validation.non_negative_float("beta", beta)

    def terms(self, posterior, prior, z, kl, seed, training=False):
        return {"penalty": self.beta * kl}

    def get_config(self):
        return {**super().get_config(), "beta": self.beta}


@keras.saving.register_keras_serializable(package="keras_vae")
class TotalCorrelation(Penalty):
    """beta-TCVAE's decomposed KL (Chen et al. 2018):

        E_x KL(q(z|x) || p(z)) = MI(x; z) + TC(z) + sum_d KL(q(z_d) || p(z_d))

    with `MI = E[log q(z|x) - log q(z)]`, `TC = E[log q(z) - sum_d log q(z_d)]`
    and the dimension-wise KL `E[sum_d log q(z_d) - log p(z)]`, the aggregate
    posterior q(z) and its marginals q(z_d) estimated on the batch by
    minibatch-weighted sampling (`"mws"`: q(z_i) ~ 1/(N B) sum_j q(z_i | x_j),
    Chen et al.'s definition, whose weights sum to 1/N: its MI and TC carry
    offsets of log N and (D - 1) log N that the gradients do not see) or
    minibatch-stratified sampling (`"mss"`, weights summing to 1; batches
    of at least 2). The three parts sum to the Monte Carlo KL of the
    batch. The penalty is `alpha MI + beta TC + gamma
    dimension-wise KL`; alpha = beta = gamma = 1 is the ELBO's KL in
    expectation.

    Args:
        dataset_size: N, the number of training examples (the estimators'
            weights depend on it).
        alpha, beta, gamma: the parts' weights, >= 0.
        estimator: `"mws"` or `"mss"`.
    """

    metric_names = ("mutual_information", "total_correlation", "dimensionwise_kl")

    def __init__(self, dataset_size, alpha=1.0, beta=6.0, gamma=1.0, estimator="mws", **kwargs):
        super().__init__(**kwargs)
        self.dataset_size = validation.positive_int("dataset_size", dataset_size)
        self.alpha = validation.non_negative_float("alpha", alpha)
        self.beta = validation.non_negative_float("beta", beta)
        self.gamma = validation.non_negative_float("gamma", gamma)
        self.estimator = validation.choice("estimator", estimator, ESTIMATORS)

    def decompose(self, z, loc, scale, log_p):
        """`(mi, tc, dimension-wise KL)` batch means from draws `z` `[B, D]`
        of the diagonal Gaussians `(loc, scale)` and log p(z) `[B]`."""
        pairs = log_density_matrix(z, loc, scale)
        batch = tf.shape(z)[0]
        if self.estimator == "mws":
            log_weights = -tf.math.log(tf.cast(batch, tf.float32) * float(self.dataset_size))
        else:
            log_weights = stratified_log_weights(batch, self.dataset_size)
        log_q_given_x = tf.reduce_sum(tf.linalg.diag_part(tf.transpose(pairs, [2, 0, 1])), axis=0)
        # log q(z_i) = logsumexp_j [log w_ij + sum_d log q(z_id | x_j)]; log q(z_id) likewise per d.
        log_q = tf.reduce_logsumexp(tf.reduce_sum(pairs, axis=2) + log_weights, axis=1)
        per_dimension_weights = log_weights[:, :, None] if self.estimator == "mss" else log_weights
        log_marginals = tf.reduce_sum(tf.reduce_logsumexp(pairs + per_dimension_weights, axis=1), axis=1)
        return (tf.reduce_mean(log_q_given_x - log_q), tf.reduce_mean(log_q - log_marginals),
                tf.reduce_mean(log_marginals - log_p))

    def terms(self, posterior, prior, z, kl, seed, training=False):
        z = _first_draw(z)
        loc, scale = _gaussian_parameters(posterior)
        mi, tc, dimension_kl = self.decompose(z, loc, scale, prior.log_prob(z))
        return {"penalty": self.alpha * mi + self.beta * tc + self.gamma * dimension_kl,
                "mutual_information": mi, "total_correlation": tc, "dimensionwise_kl": dimension_kl}

    def get_config(self):
        return {**super().get_config(), "dataset_size": self.dataset_size, "alpha": self.alpha, "beta": self.beta,
                "gamma": self.gamma, "estimator": self.estimator}


@keras.saving.register_keras_serializable(package="keras_vae")
class DIPCovariance(Penalty):
    """DIP-VAE's moment matching (Kumar et al. 2018): the KL plus

        lambda_od sum_{i != j} C_ij^2 + lambda_d sum_i (C_ii - 1)^2

    with C the covariance of the posterior means over the batch (`"i"`), or
    that plus the batch mean of the posterior variances, diag(sigma^2)
    (`"ii"`: the covariance of the aggregate posterior).

    Args:
        variant: `"i"` or `"ii"`.
        lambda_od: weight of the off-diagonal entries, >= 0.
        lambda_d: weight of the diagonal entries, >= 0; `None`: 10 *
            `lambda_od` for `"i"`, `lambda_od` for `"ii"` (Kumar et al.'s
            and disentanglement_lib's choice).
    """

    metric_names = ("covariance_off_diagonal", "covariance_diagonal")

    def __init__(self, variant="i", lambda_od=10.0, lambda_d=None, **kwargs):
        super().__init__(**kwargs)
        self.variant = validation.choice("variant", variant, DIP_VARIANTS)
        self.lambda_od = validation.non_negative_float("lambda_od", lambda_od)
        if lambda_d is None:
            lambda_d = self.lambda_od * (10.0 if self.variant == "i" else 1.0)
        self.lambda_d = validation.non_negative_float("lambda_d", lambda_d)

    def covariance(self, loc, scale):
        """`[D, D]`: C of the means `loc` `[B, D]` (plus mean diag(scale^2) for `"ii"`)."""
        centred = loc - tf.reduce_mean(loc, axis=0)
        cov = tf.matmul(centred, centred, transpose_a=True) / tf.cast(tf.shape(loc)[0], tf.float32)
        if self.variant == "ii":
            cov += tf.linalg.diag(tf.reduce_mean(tf.square(scale), axis=0))
        return cov

    def terms(self, posterior, prior, z, kl, seed, training=False):
        cov = self.covariance(*_gaussian_parameters(posterior))
        diagonal = tf.linalg.diag_part(cov)
        off = tf.reduce_sum(tf.square(cov)) - tf.reduce_sum(tf.square(diagonal))
        on = tf.reduce_sum(tf.square(diagonal - 1.0))
        return {"penalty": kl + self.lambda_od * off + self.lambda_d * on,
                "covariance_off_diagonal": off, "covariance_diagonal": on}

    def get_config(self):
        return {**super().get_config(), "variant": self.variant, "lambda_od": self.lambda_od,
                "lambda_d": self.lambda_d}


def permute_dimensions(z, seed):
    """`z` `[B, D]` with each column permuted across the rows independently
    (stateless `seed`): samples of the product of the marginals q(z_d)."""
    order = tf.argsort(tf.random.stateless_uniform(tf.shape(z), seed=seed), axis=0)
    return tf.transpose(tf.gather(tf.transpose(z), tf.transpose(order), batch_dims=1))


@keras.saving.register_keras_serializable(package="keras_vae")
class FactorDiscriminator(Penalty):
    """FactorVAE's penalty (Kim & Mnih 2018): the KL plus `gamma` times the
    total correlation as a discriminator estimates it,

        TC ~ E_q(z)[logit_real(z) - logit_permuted(z)],

    the discriminator (an MLP, `hidden_units` with leaky ReLU 0.2, 2 logits)
    trained beside the model by its own optimizer (`compile`'s
    `discriminator_optimizer`, default Adam(1e-4, beta_1=0.5, beta_2=0.9) as
    in Kim & Mnih) to tell codes z ~ q(z) from codes whose dimensions were
    permuted independently across the batch (z ~ prod_d q(z_d)): its loss,
    reported as `discriminator_loss`, is the cross-entropy of the two
    halves. The model's loss does not train the discriminator and the
    discriminator's loss trains nothing else.

    Args:
        gamma: weight of the total correlation, >= 0.
        hidden_units: the discriminator's hidden layers.
    """

    metric_names = ("total_correlation", "discriminator_loss")
    needs_gaussian_posterior = False
    #: `compile(discriminator_optimizer=...)` when not given.
    default_optimizer = {"class_name": "Adam", "config": {"learning_rate": 1e-4, "beta_1": 0.5, "beta_2": 0.9}}

    def __init__(self, gamma=35.0, hidden_units=(1000,) * 6, **kwargs):
        super().__init__(**kwargs)
        self.gamma = validation.non_negative_float("gamma", gamma)
        self.hidden_units = validation.int_tuple("hidden_units", hidden_units)

    def build(self, input_shape=None):
        super().build(input_shape)
        layers = [keras.Input((self.latent_dim,))]
        for units in self.hidden_units:
            layers += [keras.layers.Dense(units, dtype=self.dtype_policy),
                       keras.layers.LeakyReLU(0.2, dtype=self.dtype_policy)]
        layers.append(keras.layers.Dense(2, dtype=self.dtype_policy, name="logits"))
        self.discriminator = keras.Sequential(layers, name="discriminator")

    def terms(self, posterior, prior, z, kl, seed, training=False):
        z = _first_draw(z)
        permuted = permute_dimensions(z, seed)
        logits = tf.cast(self.discriminator(z, training=training), tf.float32)
        permuted_logits = tf.cast(self.discriminator(permuted, training=training), tf.float32)
        tc = tf.reduce_mean(logits[:, 0] - logits[:, 1])
        # Class 0: a code of q(z); class 1: a permuted one.
        loss = 0.5 * (tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
            tf.zeros(tf.shape(z)[:1], tf.int32), logits)) + tf.reduce_mean(
            tf.nn.sparse_softmax_cross_entropy_with_logits(tf.ones(tf.shape(z)[:1], tf.int32), permuted_logits)))
        return {"penalty": kl + self.gamma * tc, "total_correlation": tc, "discriminator_loss": loss}

    def auxiliary_optimizers(self):
        return {"discriminator_optimizer": ("discriminator_loss", self.discriminator.trainable_variables,
                                            self.default_optimizer)}

    def get_config(self):
        return {**super().get_config(), "gamma": self.gamma, "hidden_units": self.hidden_units}


#: The penalties by class name (`BaseVAE(penalty=...)` takes an instance).
PENALTIES = (WeightedKL, TotalCorrelation, FactorDiscriminator, DIPCovariance)

__all__ = ["DIPCovariance", "FactorDiscriminator", "Penalty", "TotalCorrelation", "WeightedKL", "log_density_matrix",
           "permute_dimensions", "stratified_log_weights"]
