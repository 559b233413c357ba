"""The ELBO every variational model of the zoo is trained on.

`BaseVAE` is a `keras.Model` whose `train_step` / `test_step` maximise the
evidence lower bound

    ELBO(x) = E_q(z|x)[log p(x|z)] - KL(q(z|x) || p(z))

with `tfp.distributions` objects for the posterior q(z|x) (`encode`), the
likelihood p(x|z) (`decode`) and the prior p(z) (`prior`), each built by a
component layer chosen by name (`keras_vae.posteriors`,
`keras_vae.likelihoods`, `keras_vae.priors`). The expectation is
estimated with `num_samples` reparameterised samples; the KL is analytic
through `tfd.kl_divergence` where a formula is registered, and otherwise a
Monte Carlo estimate from the same samples, with log q(z|x) from the
posterior's forward pass. The reconstruction term is summed over the event and averaged over
the batch, so `loss = reconstruction_loss + kl` is exactly the negative ELBO
in nats per example (subclasses change only the KL weighting).

`train_step`, `test_step`, `compile` and the replica loss scaling come from
`ObjectiveModel`. The reparameterisation noise of a step is drawn for the
whole global batch from a stateless seed `(seed, step)` and each replica takes
its own rows, so one step under `MirroredStrategy` sees exactly the noise it
would see on one device.

Subclasses provide the networks (`encoder` maps `[B, *data_shape]` to
posterior parameters, `decoder` maps `[B, latent_dim]` to likelihood
parameters of shape `[B, *likelihood.params_shape]`) and may override `make_posterior`,
`kl_penalty` or `latent_terms`; none of them copies `train_step`.
"""

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from keras_vae import likelihoods as likelihoods_lib
from keras_vae import penalties as penalties_lib
from keras_vae import posteriors as posteriors_lib
from keras_vae import priors as priors_lib
from keras_vae import samplers as samplers_lib
from keras_vae import validation
from keras_vae.layers import weight_norm
from keras_vae.models.objective import ObjectiveModel

tfd = tfp.distributions


@keras.saving.register_keras_serializable(package="keras_vae")
class BaseVAE(ObjectiveModel):
    """A variational autoencoder trained with plain `model.fit`.

    Args:
        encoder: a Keras model mapping `[B, *data_shape]` to
            `[B, posterior_params_size]` (`2 * latent_dim` for the diagonal
            Gaussian posterior: means, then pre-softplus scales; see
            `keras_vae.posteriors` for the others).
        decoder: a Keras model mapping `[B, latent_dim]` to the likelihood's
            parameters, `[B, *likelihood.params_shape]` (`[B, *data_shape]`
            for one parameter per element; see `keras_vae.likelihoods`).
        data_shape: shape of one example, e.g. `(28, 28, 1)`.
        latent_dim: dimension of z.
        likelihood: the observation model, a name in
            `keras_vae.likelihoods.NAMES` or a `keras_vae.likelihoods.Likelihood`.
        likelihood_scale: fixed standard deviation of the `"gaussian"`
            likelihood (ignored by the others).
        posterior: the family of q(z|x), a name in
            `keras_vae.posteriors.NAMES` or a `keras_vae.posteriors.Posterior`.
        prior: p(z), a name in `keras_vae.priors.NAMES` or a
            `keras_vae.priors.Prior`.
        num_samples: reparameterised samples per example: for the
            reconstruction term of the ELBO, or the k of the IWAE bound.
        objective: what training maximises: `"elbo"`, `"iwae"` (the
            importance-weighted bound with k = `num_samples`, Burda et al.
            2015; k = 1 is the ELBO with a Monte Carlo KL) or `"iwae_dreg"`
            (the same bound, the encoder trained with the doubly
            reparameterised gradient of Tucker et al. 2018; diagonal-Gaussian
            posterior, and a prior that does not use the encoder).
        seed: integer seed of the training noise; drawn from numpy's global
            generator when `None` (so `keras.utils.set_random_seed` applies)
            and recorded in the config.
        kl_warmup_steps: the KL term's weight in the loss rises linearly
            from 0 to 1 over this many optimizer steps (0: always 1).
        free_bits: a floor of this many nats per latent dimension on the
            batch-mean KL as the loss sees it (Kingma et al. 2016): each
            dimension contributes `max(free_bits, mean_batch KL_j)` where the
            KL is analytic per dimension; otherwise (a flow posterior or
            prior, the VampPrior) the floor holds for the dimensions as one
            group, `max(free_bits * latent_dim, mean_batch KL)`. 0: none.
        sampler: what `sample` draws z from instead of the prior: `None`
            (the prior) or a `keras_vae.samplers.GaussianMixtureSampler`;
            usually set after training by `fit_sampler`.
        penalty: `None` (the ELBO's KL) or a `keras_vae.penalties.Penalty`
            that the loss adds in place of the KL (beta-TCVAE, FactorVAE,
            DIP-VAE); its parts are reported as metrics and `elbo` stays
            the unweighted bound. A penalty with a network of its own
            (`FactorDiscriminator`) trains it with a second optimizer,
            `compile(discriminator_optimizer=...)`.
        **kwargs: `keras.Model` arguments (`name`, `dtype`, ...).

    Metrics reported by `fit` and `evaluate` (nats per example): `loss` (the
    objective minimised, warm-up and free bits included), `elbo` (the true,
    unweighted bound), `reconstruction_loss` (-E_q[log p(x|z)]) and `kl`;
    with an IWAE objective also `iwae`, the k-sample bound (`loss = -iwae`).
    """

    #: Names of the metrics `fit` / `evaluate` report, in order.
    metric_names = ("loss", "elbo", "reconstruction_loss", "kl")
    #: Encoder outputs per latent dimension of a model without a choice of
    #: posterior (`AE`: 1, a point).
    params_per_latent = 2
    #: Whether the model has an ELBO and a likelihood estimate (`AE`: no).
    defines_density = True
    #: Whether the loss has a KL term between a posterior and a prior chosen
    #: by `posterior=` / `prior=`, which warm-up and free bits act on.
    has_kl_term = True

    def __init__(
        self,
        encoder,
        decoder,
        data_shape=(28, 28, 1),
        latent_dim=16,
        likelihood="bernoulli",
        likelihood_scale=0.1,
        posterior="diagonal_gaussian",
        prior="standard_normal",
        num_samples=1,
        objective="elbo",
        seed=None,
        kl_warmup_steps=0,
        free_bits=0.0,
        sampler=None,
        penalty=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.kl_warmup_steps = validation.non_negative_int("kl_warmup_steps", kl_warmup_steps)
        self.free_bits = validation.non_negative_float("free_bits", free_bits)
        if not self.has_kl_term and (self.kl_warmup_steps or self.free_bits):
            raise ValueError(
                f"{type(self).__name__} has no KL term for `kl_warmup_steps` / `free_bits` to act on. "
                f"Received: kl_warmup_steps={kl_warmup_steps!r}, free_bits={free_bits!r}"
            )
        self.data_shape = validation.int_tuple("data_shape", data_shape)
        self.latent_dim = validation.positive_int("latent_dim", latent_dim)
        self.num_samples = validation.positive_int("num_samples", num_samples)
        self.objective = validation.choice("objective", objective, OBJECTIVES)
        if self.objective != "elbo":
            if not self.has_kl_term:
                raise ValueError(f"{type(self).__name__} has no ELBO to importance-weight. Received: objective={objective!r}")
            if self.kl_warmup_steps or self.free_bits:
                raise ValueError(
                    "`kl_warmup_steps` and `free_bits` act on the ELBO's KL term, which the IWAE bound does not have. "
                    f"Received: objective={objective!r}, kl_warmup_steps={kl_warmup_steps!r}, free_bits={free_bits!r}"
                )
            if type(self).kl_penalty is not BaseVAE.kl_penalty or type(self).latent_terms is not BaseVAE.latent_terms:
                raise ValueError(
                    f"{type(self).__name__} weights or replaces the ELBO's KL term, which the IWAE bound does not "
                    f"have; use objective='elbo'. Received: objective={objective!r}"
                )
            self.metric_names = type(self).metric_names + ("iwae",)
        if seed is None:
            seed = int(np.random.randint(0, 2**31 - 1))
        self.seed = validation.seed("seed", seed)
        self.penalty_layer = self._penalty(penalty)
        self.likelihood = likelihoods_lib.get(likelihood, self.data_shape, likelihood_scale)  # checks the scale
        if likelihood == "gaussian":
            likelihood_scale = float(likelihood_scale)
        self.likelihood_name = likelihood if isinstance(likelihood, str) else type(self.likelihood).__name__
        self.likelihood_scale = likelihood_scale
        self.posterior_layer, self.prior_layer = self._latent_components(posterior, prior)
        if self.objective == "iwae_dreg" and not (
            isinstance(self.posterior_layer, posteriors_lib.DiagonalGaussian)
            and not isinstance(self.prior_layer, priors_lib.VampPrior)
        ):
            raise ValueError(
                "`objective='iwae_dreg'` needs a diagonal-Gaussian posterior (its log q at a fixed z is one pass) and "
                "a prior that does not run the encoder (not 'vamp'); use objective='iwae'. "
                f"Received: objective='iwae_dreg', posterior={type(self.posterior_layer).__name__}, "
                f"prior={type(self.prior_layer).__name__}"
            )
        if self.penalty_layer is not None:
            if self.penalty_layer.needs_gaussian_posterior and not isinstance(
                    self.posterior_layer, posteriors_lib.DiagonalGaussian):
                raise ValueError(
                    f"`penalty` {type(self.penalty_layer).__name__} reads the posterior's mean and scale and needs "
                    f"posterior='diagonal_gaussian'. Received: posterior={type(self.posterior_layer).__name__}")
            self.metric_names = self.metric_names + self.penalty_layer.metric_names
        self.encoder = self._check_network("encoder", encoder, self.data_shape, self._encoder_output_shape(encoder))
        self.decoder = self._check_network("decoder", decoder, self.latent_shape, self.likelihood.params_shape)
        # Noise keys: (seed, step) for training steps, (seed, -1 - i) for the
        # i-th batch of an `evaluate` call, so evaluation is repeatable and
        # does not shift the training noise.
        self._noise_step, self._eval_step = (
            self.add_weight(
                name=name,
                shape=(),
                dtype="int64",
                initializer="zeros",
                trainable=False,
                aggregation="only_first_replica",
            )
            for name in ("noise_step", "eval_step")
        )
        self._trackers = self._make_trackers()
        # `evaluate(iw_samples=k)` adds these two while it runs.
        self._iw_samples = None
        self._score_function = None  # traced on the first `score` call
        self._iw_trackers = [keras.metrics.Mean(name="nll"), keras.metrics.Mean(name="bits_per_dim")]
        self._set_sampler(sampler)
        self.build((None, *self.data_shape))

    @staticmethod
    def _check_network(name, network, input_shape, output_shape):
        if not isinstance(network, keras.layers.Layer):
            raise ValueError(
                f"`{name}` must be a Keras layer or model. Received: {name}={network!r}"
            )
        try:
            got = tuple(network.compute_output_shape((None, *input_shape)))
        except Exception as err:  # noqa: BLE001 - report what the network said
            raise ValueError(
                f"`{name}` must accept inputs of shape {(None, *input_shape)}. "
                f"Received: {name} that fails with {type(err).__name__}: {err}"
            ) from None
        if got[1:] != tuple(output_shape):
            raise ValueError(
                f"`{name}` must output shape {(None, *output_shape)}. "
                f"Received: {name} with output shape {got}"
            )
        return network

    def build(self, input_shape=None):
        for network, shape in ((self.encoder, self.data_shape), (self.decoder, self.latent_shape)):
            if not network.built:
                network.build((None, *shape))
        self.built = True

    # ------------------------------------------------------------------ #
    # Distributions
    # ------------------------------------------------------------------ #
    def _latent_components(self, posterior, prior):
        """The posterior and prior layers (None, None for a model without the choice)."""
        if self.has_kl_term:
            prior = priors_lib.get(prior, self.latent_dim, self.data_shape, self.likelihood.value_scale)
            if isinstance(prior, priors_lib.VampPrior) and prior.data_shape != self.data_shape:
                raise ValueError(
                    f"`prior` must have pseudo-inputs of the data's shape {self.data_shape}. "
                    f"Received: prior={prior.name!r} with data_shape={prior.data_shape}"
                )
            return posteriors_lib.get(posterior, self.latent_dim), prior
        if (posterior, prior) != ("diagonal_gaussian", "standard_normal"):
            raise ValueError(
                f"{type(self).__name__} has its own latent and takes no `posterior` / `prior`. "
                f"Received: posterior={posterior!r}, prior={prior!r}"
            )
        return None, None

    def _penalty(self, penalty):
        """The penalty layer (None for the ELBO's KL), checked against the
        objective and built over `latent_dim`."""
        if penalty is None:
            return None
        if not isinstance(penalty, penalties_lib.Penalty):
            raise ValueError(f"`penalty` must be None or a keras_vae.penalties.Penalty (one of "
                             f"{[c.__name__ for c in penalties_lib.PENALTIES]}). Received: penalty={penalty!r}")
        conflicts = {"objective": self.objective != "elbo", "free_bits": bool(self.free_bits),
                     "kl_penalty": type(self).kl_penalty is not BaseVAE.kl_penalty, "a KL term": not self.has_kl_term}
        if any(conflicts.values()):
            raise ValueError(
                f"`penalty` replaces the ELBO's KL term in the loss; {type(self).__name__} cannot take one with "
                f"{[k for k, v in conflicts.items() if v]} (an IWAE objective, free bits, a weighted KL, or no KL "
                f"term). Received: penalty={type(penalty).__name__}, objective={self.objective!r}, "
                f"free_bits={self.free_bits!r}")
        if not penalty.built:
            penalty.build((None, self.latent_dim))
        elif penalty.latent_dim != self.latent_dim:
            raise ValueError(f"`penalty` must be over latent_dim={self.latent_dim} dimensions. "
                             f"Received: penalty={penalty.name!r} with latent_dim={penalty.latent_dim}")
        return penalty

    def _trained_variables(self):
        auxiliary = {id(v) for _, variables, _ in self.auxiliary_optimizers().values() for v in variables}
        return [v for v in self.trainable_variables if id(v) not in auxiliary]

    def auxiliary_optimizers(self):
        return {} if self.penalty_layer is None else self.penalty_layer.auxiliary_optimizers()

    @classmethod
    def encoder_outputs(cls, latent_dim, posterior="diagonal_gaussian"):
        """`(posterior, width)`: the posterior layer for `posterior` (None for
        a model without the choice) and the width the encoder must output,
        for subclasses that build their encoder before `BaseVAE.__init__`."""
        if not cls.has_kl_term:
            return posterior, cls.params_per_latent * latent_dim
        layer = posteriors_lib.get(posterior, latent_dim)
        return layer, layer.params_size()

    @property
    def posterior_params_size(self):
        """Width of the encoder's output: the posterior's `params_size()`
        (`params_per_latent * latent_dim` for a model without the choice)."""
        if self.posterior_layer is None:
            return self.params_per_latent * self.latent_dim
        return self.posterior_layer.params_size()

    @property
    def latent_shape(self):
        """Shape of one latent z: `(latent_dim,)`."""
        return (self.latent_dim,)

    def _encoder_output_shape(self, encoder):
        """The output shape (batch excluded) the encoder must have."""
        return (self.posterior_params_size,)

    @property
    def prior(self):
        """p(z), from the prior layer (a `tfd.Distribution`, event `[latent_dim]`);
        N(0, I) for a model without the choice (`AE`'s `sample`)."""
        if self.prior_layer is None:
            return priors_lib.standard_normal(self.latent_dim)
        return self.prior_layer.distribution(self._gaussian_posterior)

    def _gaussian_posterior(self, x):
        """The diagonal-Gaussian part of q(z|x) (what a VampPrior mixes)."""
        return self.posterior_layer.gaussian_part(tf.cast(self.encoder(x), tf.float32))

    def make_posterior(self, params):
        """q(z|x) from encoder outputs, by the posterior layer."""
        return self.posterior_layer.distribution(params)

    def encode(self, x, training=False):
        """Returns the posterior q(z|x) as a `tfd.Distribution` (batch `[B]`, event `[latent_dim]`)."""
        self._check_data("x", x, dataset=False)
        return self._posterior(x, training)

    def decode(self, z, training=False):
        """Returns the likelihood p(x|z) as a `tfd.Distribution` (batch `[B]`, event `data_shape`)."""
        self._check_data("z", z, shape=self.latent_shape, likelihood=False, dataset=False)
        return self._likelihood(z, training)

    def _posterior(self, x, training=False):
        params = self.encoder(x, training=training)
        return self.make_posterior(tf.cast(params, tf.float32))

    def _likelihood(self, z, training=False):
        """p(x|z) for `z` of shape `[..., *latent_shape]` (any leading dims)."""
        lead = tf.shape(z)[: tf.rank(z) - len(self.latent_shape)]
        flat = tf.reshape(z, [-1, *self.latent_shape])
        params = tf.cast(self.decoder(flat, training=training), tf.float32)
        params = tf.reshape(params, tf.concat([lead, self.likelihood.params_shape], 0))
        return self.likelihood.distribution(params)

    # ------------------------------------------------------------------ #
    # Inference helpers
    # ------------------------------------------------------------------ #
    def latent(self, x, training=False):
        """The deterministic latent of `x` (no input checks): the posterior
        mean, or for a flow posterior the flow applied to its base mean."""
        return _point_latent(self._posterior(x, training))

    def call(self, x, training=False):
        """Deterministic reconstruction: the likelihood mean at `latent(x)`."""
        return self._likelihood(self.latent(x, training), training).mean()

    def reconstruct(self, x, sample=False, seed=None):
        """Reconstructs `x`.

        With `sample=False` (default) the result is deterministic: the
        likelihood mean at the posterior mean. With `sample=True`, z is drawn
        from q(z|x) (reproducibly for an integer `seed`) and the likelihood mean
        at that z is returned.
        """
        self._check_data("x", x, dataset=False)
        if not sample:
            return self(x)
        z = self._posterior(x).sample(seed=_stateless_seed(seed))
        return self._likelihood(z).mean()

    @property
    def initializes_from_data(self):
        """Whether `initialize_from_data` changes anything: the model has
        weight-normalised layers or a VampPrior."""
        return weight_norm.has_weight_norm(self) or isinstance(self.prior_layer, priors_lib.VampPrior)

    def initialize_from_data(self, x, seed=0):
        """Data-dependent initialisation (Salimans & Kingma 2016) of the
        weight-normalised layers (`keras_vae.layers.WeightNormConv2D`), on one
        batch `x`, before training: the encoder's on `x`, the decoder's on z
        drawn from the resulting q(z|x). Each such layer's outputs on the
        batch then have zero mean and the layer's `init_scale` as standard
        deviation per channel. A VampPrior's pseudo-inputs are set to the
        first K images of `x` (repeated if `x` holds fewer). Other layers
        are unchanged; a model without such layers is left as it is."""
        self._check_data("x", x, dataset=False)
        if isinstance(self.prior_layer, priors_lib.VampPrior):
            k = self.prior_layer.num_components
            self.prior_layer.pseudo_inputs.assign(tf.gather(tf.cast(x, tf.float32), tf.range(k) % tf.shape(x)[0]))
        if not weight_norm.has_weight_norm(self):
            return
        posterior = self.make_posterior(tf.cast(weight_norm.initialize_from_data(self.encoder, x), tf.float32))
        weight_norm.initialize_from_data(self.decoder, posterior.sample(seed=_stateless_seed(seed)))

    def sample(self, num_samples, seed=None):
        """Draws `num_samples` z from the prior (or the sampler `fit_sampler`
        fitted) and returns the likelihood means.

        The same integer `seed` gives the same images.
        """
        num_samples = validation.positive_int("num_samples", num_samples)
        z = self.sampling_distribution.sample(num_samples, seed=_stateless_seed(seed))
        return self._likelihood(z).mean()

    # ------------------------------------------------------------------ #
    # Samplers fitted after training
    # ------------------------------------------------------------------ #
    @property
    def sampling_distribution(self):
        """What `sample` (and the `sample` serving signature) draws z from:
        the sampler fitted by `fit_sampler`, else the prior."""
        return self.prior if self.sampler_layer is None else self.sampler_layer.distribution()

    def _set_sampler(self, sampler):
        """Replaces the sampler layer (or removes it: `None`), also on a built
        model: Keras locks a built layer's state, so the swap unlocks it as
        Keras' own `Dense.enable_lora` does, and untracks the old layer so
        that its weights leave the model's."""
        if sampler is not None and not (
            isinstance(sampler, samplers_lib.GaussianMixtureSampler) and sampler.latent_dim == self.latent_dim
        ):
            raise ValueError(
                f"`sampler` must be None or a keras_vae.samplers.GaussianMixtureSampler over {self.latent_dim} "
                f"dimensions. Received: sampler={sampler!r}"
            )
        locked = self._tracker.locked
        self._tracker.unlock()
        try:
            old = getattr(self, "sampler_layer", None)
            if old is not None:
                self._tracker.untrack(old)
            self.sampler_layer = sampler
        finally:
            if locked:
                self._tracker.lock()

    def fit_sampler(self, data, kind="gmm", components=10, max_iterations=200, tolerance=1e-4, seed=0,
                    batch_size=500):
        """Makes `sample` draw z from a distribution fitted to the codes of
        `data` (usually the training images) rather than from the prior.

        Args:
            data: images, an array `[N, *data_shape]` or a `tf.data.Dataset`
                of batches (of images or `(images, ...)` tuples).
            kind: `"gmm"`: a Gaussian mixture with full covariances fitted by
                EM to the codes `latent(x)` (`keras_vae.samplers`); `"prior"`:
                back to the prior (`data` is not read).
            components: mixture components.
            max_iterations, tolerance: EM stops after this many iterations or
                when the mean log-likelihood gains less than `tolerance` nats.
            seed: the k-means++ seeding of the first EM step.
            batch_size: images encoded at once (arrays).

        Returns:
            The EM history: the codes' mean log-likelihood (nats per code)
            at each iteration, non-decreasing (`[]` for `kind="prior"`).

        The sampler is saved with the model (`.keras`, `export_serving`'s
        `sample` signature). Fit it on the training set's codes: fitted to
        the test set, samples would be judged on what they were fitted to.
        """
        kind = validation.choice("kind", kind, samplers_lib.KINDS)
        if kind == "prior":
            self._set_sampler(None)
            return []
        components = validation.positive_int("components", components)
        batch_size = validation.positive_int("batch_size", batch_size)
        self._check_data("data", data)
        data = validation.input_part(data)
        if isinstance(data, tf.data.Dataset):
            batches = (keras.utils.unpack_x_y_sample_weight(batch)[0] for batch in data)
        else:
            data = np.asarray(data)
            batches = (data[i : i + batch_size] for i in range(0, len(data), batch_size))
        codes = np.concatenate([np.asarray(self.latent(tf.convert_to_tensor(b, tf.float32))) for b in batches])
        with self.distribute_strategy.scope():
            sampler = samplers_lib.GaussianMixtureSampler(self.latent_dim, components, name="sampler")
        history = sampler.fit(codes, max_iterations=max_iterations, tolerance=tolerance, seed=seed)
        self._set_sampler(sampler)
        return history

    # ------------------------------------------------------------------ #
    # Importance-weighted likelihood
    # ------------------------------------------------------------------ #
    #: Rows (samples x examples) the decoder sees at once in `score`: bounds
    #: its memory whatever `num_samples` is.
    score_rows = 8192

    def score(self, x, num_samples=1000, seed=0, batch_size=100):
        """Per-example ELBO and importance-weighted log-likelihood of `x`, in nats.

        With `k = num_samples` draws z_1..z_k from q(z|x) and log-weights
        `w_i = log p(x|z_i) + log p(z_i) - log q(z_i|x)`:

            elbo           = mean_i w_i                     (Monte Carlo ELBO)
            log_likelihood = logsumexp_i w_i - log k         (IWAE bound, Burda et al. 2015)

        `log_likelihood` <= log p(x) and tightens as k grows (k=5000 is the
        usual test protocol). The draws are processed in chunks of at most
        `score_rows // batch` samples with a running logsumexp, so memory
        does not grow with k. Deterministic: the same `seed` gives the same
        numbers. Returns `{"elbo": [N], "log_likelihood": [N]}` as numpy.
        """
        self._check_data("x", x)
        self._check_scorable()
        num_samples = validation.positive_int("num_samples", num_samples)
        seed = validation.seed("seed", seed)
        batch_size = validation.positive_int("batch_size", batch_size)
        data = validation.input_part(x)
        if not isinstance(data, tf.data.Dataset):
            data = tf.data.Dataset.from_tensor_slices(np.asarray(data)).batch(batch_size)
        if self._score_function is None:
            self._score_function = tf.function(self._score_graph, reduce_retracing=True)
        seed = tf.constant([seed, 0], tf.int32)
        parts = [
            self._score_function(keras.utils.unpack_x_y_sample_weight(batch)[0], tf.constant(num_samples), seed)
            for batch in data
        ]
        return {key: np.concatenate([p[key].numpy() for p in parts]) for key in parts[0]}

    def _check_scorable(self):
        """Raises a `ValueError` if this model cannot score inputs (no density)."""

    def log_likelihood(self, x, num_samples=1000, seed=0, batch_size=100):
        """The importance-weighted estimate of log p(x) per example (see `score`)."""
        return self.score(x, num_samples, seed, batch_size)["log_likelihood"]

    def _score_graph(self, x, num_samples, seed):
        """`score` for one batch, in graph form (also the `score` serving
        signature and `evaluate(iw_samples=k)`). Every chunk draws the same
        number of samples, so shapes stay static (XLA); draws past
        `num_samples` in the last chunk are masked out."""
        x = tf.cast(x, tf.float32)
        posterior, prior = self._posterior(x), self.prior
        batch = x.shape[0]
        if batch is None:  # dynamic batch (a serving signature): a tensor chunk size
            batch = tf.shape(x)[0]
            chunk = tf.maximum(1, self.score_rows // tf.maximum(batch, 1))
        else:  # static batch: a Python chunk size keeps every shape static (XLA)
            chunk = max(1, self.score_rows // max(batch, 1))
        num_samples = tf.cast(num_samples, tf.int32)
        num_chunks = (num_samples + chunk - 1) // chunk

        def body(i, running_max, running_sum, total):
            # log q from the sampling pass (a flow's forward pass, not its inverse).
            z, log_q = posterior.experimental_sample_and_log_prob(
                chunk, seed=tf.random.experimental.stateless_fold_in(seed, i))
            log_w = self._likelihood(z).log_prob(x) + prior.log_prob(z) - log_q
            valid = (i * chunk + tf.range(chunk) < num_samples)[:, None]
            total += tf.reduce_sum(tf.where(valid, log_w, 0.0), 0)
            log_w = tf.where(valid, log_w, -np.inf)
            new_max = tf.maximum(running_max, tf.reduce_max(log_w, 0))
            running_sum = running_sum * tf.exp(running_max - new_max) + tf.reduce_sum(tf.exp(log_w - new_max), 0)
            return i + 1, new_max, running_sum, total

        zeros = tf.zeros([batch])
        _, log_max, log_sum, total = tf.while_loop(
            lambda i, *_: i < num_chunks,
            body,
            (tf.constant(0), tf.fill([batch], -np.inf), zeros, zeros),
        )
        k = tf.cast(num_samples, tf.float32)
        return {"elbo": total / k, "log_likelihood": log_max + tf.math.log(log_sum) - tf.math.log(k)}

    # ------------------------------------------------------------------ #
    # The objective
    # ------------------------------------------------------------------ #
    def kl_penalty(self, kl):
        """The KL term as it enters the loss, given the batch-mean KL. ELBO: `kl`."""
        return kl

    def kl_weight(self):
        """The warm-up weight of the KL term at the optimizer's current step:
        `min(1, step / kl_warmup_steps)` (0 before the model is compiled), or
        1 without warm-up."""
        if not self.kl_warmup_steps:
            return tf.constant(1.0)
        return self.step_fraction(self.kl_warmup_steps)

    def step_fraction(self, steps):
        """`min(1, optimizer step / steps)`; 0 before the model is compiled."""
        optimizer = getattr(self, "optimizer", None)
        step = optimizer.iterations if optimizer is not None else 0
        return tf.minimum(tf.cast(step, tf.float32) / steps, 1.0)

    def _floored_kl(self, posterior, prior, kl):
        """`sum_j max(free_bits, mean_batch KL_j)` from the per-dimension
        analytic KL where there is one (both distributions `tfd.Independent`
        with a registered KL); otherwise `max(free_bits * latent_dim, kl)`
        for the batch-mean KL `kl`."""
        if isinstance(posterior, tfd.Independent) and isinstance(prior, tfd.Independent):
            try:
                per_dimension = tfd.kl_divergence(posterior.distribution, prior.distribution)
            except NotImplementedError:
                pass
            else:
                return tf.reduce_sum(tf.maximum(tf.reduce_mean(per_dimension, axis=0), self.free_bits))
        return tf.maximum(kl, self.free_bits * self.latent_dim)

    def latent_terms(self, x, training=False):
        """Encodes `x` and returns `(z, terms)`.

        `z` holds `num_samples` reparameterised draws from q(z|x),
        `[S, B, *latent_shape]`; `terms` holds named batch-mean scalars, at
        least `"penalty"` (what the loss adds to the reconstruction term):
        here `kl` and `penalty = kl_penalty(kl)`.
        """
        posterior, prior = self._posterior(x, training), self.prior
        seed = self._next_noise_seed(training)
        z, log_q = self._draw(posterior, self.num_samples, training, seed=seed)
        kl = _batch_kl(posterior, prior, log_q, lambda: prior.log_prob(z))
        if self.penalty_layer is not None:
            terms = dict(self.penalty_layer.terms(posterior, prior, z, kl, tf.cast(
                tf.random.experimental.stateless_fold_in(seed, 1), tf.int32), training=training))
            return z, {"kl": kl, **terms, "penalty": self.kl_weight() * terms["penalty"]}
        penalized = self._floored_kl(posterior, prior, kl) if self.free_bits else kl
        return z, {"kl": kl, "penalty": self.kl_weight() * self.kl_penalty(penalized)}

    def _next_noise_seed(self, training):
        counter = self._noise_step if training else self._eval_step
        step = counter.value
        counter.assign_add(1)
        return tf.stack([tf.constant(self.seed, tf.int64), step if training else -1 - step])

    def sample_posterior(self, posterior, num_samples, training=False):
        """Reparameterised draws from q(z|x), `[num_samples, B, latent_dim]`.

        For a diagonal-Gaussian posterior or a flow on one, `loc + scale *
        eps` (then the flow's forward pass) with `eps` from a stateless
        generator keyed by `(seed, step)`, drawn for the global batch and
        sliced to this replica's rows: a step sees the same noise on one
        device as on several when the replicas get equal shares of the batch
        (`drop_remainder=True`; an uneven last batch reuses a few rows across
        replicas). Other posteriors draw with `posterior.sample` from the
        same key folded with the replica id.
        """
        return self._draw(posterior, num_samples, training)[0]

    def _draw(self, posterior, num_samples, training=False, seed=None):
        """`sample_posterior`'s draws and log q(z|x) at them, `([S, B, D], [S, B])`,
        from the noise key `seed` (default: the next one)."""
        if seed is None:
            seed = self._next_noise_seed(training)
        ctx = tf.distribute.get_replica_context()
        replicas = ctx.num_replicas_in_sync if ctx is not None else 1
        replica = ctx.replica_id_in_sync_group if ctx is not None else 0
        base = posteriors_lib.gaussian_base(posterior)
        if base is None:
            seed = tf.random.experimental.stateless_fold_in(seed, tf.cast(replica, tf.int64))
            return posterior.experimental_sample_and_log_prob(num_samples, seed=tf.cast(seed, tf.int32))
        batch = tf.shape(base.mean())[0]
        eps = tf.random.stateless_normal([num_samples, batch * replicas, self.latent_dim], seed=seed)
        start = batch * tf.cast(replica, batch.dtype)
        return posteriors_lib.reparameterize(posterior, eps[:, start : start + batch])

    def compute_terms(self, x, training=False):
        """Returns the named scalar terms of the objective for a batch `x`.

        Always has `"loss"` (what gradients are taken of) and one entry per
        tracker in `metrics`.
        """
        if self.objective != "elbo":
            return self._iwae_terms(x, training)
        z, terms = self.latent_terms(x, training)
        log_lik = self._likelihood(z, training).log_prob(tf.cast(x, tf.float32))
        reconstruction = -tf.reduce_mean(log_lik)
        terms = dict(terms, reconstruction_loss=reconstruction)
        terms["loss"] = reconstruction + terms.pop("penalty")
        if "kl" in terms:
            terms["elbo"] = -(reconstruction + terms["kl"])
        if self.losses:  # weight regularisers and `add_loss` terms
            terms["loss"] += tf.add_n([tf.cast(v, tf.float32) for v in self.losses])
        return terms

    def _iwae_terms(self, x, training=False):
        """The IWAE objective (`objective="iwae"` / `"iwae_dreg"`):

            iwae = mean_batch [logsumexp_i w_i - log k],
            w_i = log p(x|z_i) + log p(z_i) - log q(z_i|x),  z_1..z_k ~ q(z|x)

        with `loss = -iwae`; `kl`, `reconstruction_loss` and `elbo` from the
        same draws. For DReG, `"encoder_loss"`, whose gradient with respect
        to the encoder is Tucker et al.'s `sum_i w~_i^2 d log w_i / d z_i
        dz_i / d phi` (normalised weights w~, log q with its parameters held
        fixed); the decoder and prior keep the IWAE gradient (`_loss_groups`)."""
        params = tf.cast(self.encoder(x, training=training), tf.float32)
        posterior, prior = self.make_posterior(params), self.prior
        z, log_q = self._draw(posterior, self.num_samples, training)
        log_lik = self._likelihood(z, training).log_prob(tf.cast(x, tf.float32))
        log_p = prior.log_prob(z)
        bound = tf.reduce_logsumexp(log_lik + log_p - log_q, axis=0) - tf.math.log(float(self.num_samples))
        kl = _batch_kl(posterior, prior, log_q, lambda: log_p)
        reconstruction = -tf.reduce_mean(log_lik)
        terms = {"loss": -tf.reduce_mean(bound), "iwae": tf.reduce_mean(bound), "kl": kl,
                 "reconstruction_loss": reconstruction, "elbo": -(reconstruction + kl)}
        if self.objective == "iwae_dreg":
            log_w = log_lik + log_p - self.make_posterior(tf.stop_gradient(params)).log_prob(z)
            weights = tf.stop_gradient(tf.nn.softmax(log_w, axis=0))
            terms["encoder_loss"] = -tf.reduce_mean(tf.reduce_sum(tf.square(weights) * log_w, axis=0))
        if self.losses:
            regularization = tf.add_n([tf.cast(v, tf.float32) for v in self.losses])
            terms = {**terms, "loss": terms["loss"] + regularization}
            if "encoder_loss" in terms:
                terms["encoder_loss"] += regularization
        return terms

    def _loss_groups(self):
        if self.objective != "iwae_dreg":
            return super()._loss_groups()
        encoder_side = {id(v) for v in self.encoder.trainable_variables + self.posterior_layer.trainable_variables}
        trained = self._trained_variables()
        return (("loss", [v for v in trained if id(v) not in encoder_side]),
                ("encoder_loss", [v for v in trained if id(v) in encoder_side]))

    # ------------------------------------------------------------------ #
    # Input checks, run before any graph is built
    # ------------------------------------------------------------------ #
    def _check_data(self, name, data, shape=None, likelihood=True, dataset=True):
        shape = self.data_shape if shape is None else shape
        lik = self.likelihood if likelihood else None
        data = validation.input_part(data)
        if not dataset and isinstance(data, tf.data.Dataset):
            raise ValueError(
                f"`{name}` must be one batch (a tensor or array of shape [batch, {', '.join(map(str, shape))}]); "
                f"map a `tf.data.Dataset` batch by batch, or use `predict` for reconstructions. "
                f"Received: {name}={data!r}"
            )
        if validation.check_dataset(name, data, shape):
            return
        if isinstance(data, tf.Tensor) and not tf.executing_eagerly():
            validation.check_spec(name, data.shape.as_list(), data.dtype, shape)
            return
        if isinstance(data, (np.ndarray, tf.Tensor, list, str, bytes)) or np.isscalar(data):
            validation.check_array(name, data, shape, lik)

    @property
    def metrics(self):
        return super().metrics + (self._iw_trackers if self._iw_samples else [])

    def test_step(self, data):
        x = self._batch_x(data)
        terms = self.compute_terms(x, training=False)
        if self._iw_samples:
            seed = tf.cast(self._next_noise_seed(False), tf.int32)
            nll = -tf.reduce_mean(self._score_graph(x, self._iw_samples, seed)["log_likelihood"])
            terms.update(nll=nll, bits_per_dim=nll / (float(np.prod(self.data_shape)) * np.log(2.0)))
        return self._report(terms, x)

    def evaluate(self, x=None, y=None, *args, iw_samples=None, **kwargs):
        """`keras.Model.evaluate`, repeatable: its noise comes from its own key,
        reset at every call (also for `fit`'s validation data).

        `iw_samples=k` also reports `nll`, minus the importance-weighted
        estimate of log p(x) with k samples per example (see `score`), in
        nats per example, and `bits_per_dim` (`nll / (prod(data_shape) ln 2)`).
        """
        self._eval_step.assign(0)
        if iw_samples is None:
            return super().evaluate(x, y, *args, **kwargs)
        self._check_scorable()
        self._iw_samples = validation.positive_int("iw_samples", iw_samples)
        self.test_function = None  # retrace with the two extra metrics
        try:
            return super().evaluate(x, y, *args, **kwargs)
        finally:
            self._iw_samples = None
            self.test_function = None

    @classmethod
    def from_preset(cls, name, compile=True):
        """The pretrained zoo entry `name` (`keras_vae.zoo.list()`), which
        must hold this class or a subclass (but not a model without a density,
        `AE`, for a class with one); see `keras_vae.zoo.load`."""
        from keras_vae import zoo

        held = zoo.class_of(name)
        if not issubclass(held, cls) or (cls.defines_density and not held.defines_density):
            raise ValueError(
                f"zoo entry {name!r} holds a {held.__name__}, which is not a {cls.__name__}: load it with "
                f"`keras_vae.{held.__name__}.from_preset({name!r})` or `keras_vae.zoo.load({name!r})`. "
                f"Received: name={name!r}"
            )
        return zoo.load(name, compile=compile)

    # ------------------------------------------------------------------ #
    # Serving
    # ------------------------------------------------------------------ #
    def export_serving(self, base_path, version=1, model_name=None, overwrite=False, verbose=False):
        """Writes this model as a SavedModel for TF Serving to
        `<base_path>/<model_name>/<version>/`; see `keras_vae.export.export_serving`."""
        from keras_vae import export

        return export.export_serving(self, base_path, version, model_name, overwrite, verbose)

    def _images_spec(self):
        return tf.TensorSpec([None, *self.data_shape], tf.float32, name="images")

    def serving_signatures(self):
        """`{name: (fn, input_signature)}`: the signatures `export_serving`
        writes. Each `fn` takes named tensors and returns a dict of named
        outputs; bad values (e.g. `num_images` < 1) fail with an
        `InvalidArgumentError` naming the input."""
        self._check_serving()
        images = self._images_spec()
        count = lambda name: tf.TensorSpec([], tf.int32, name=name)  # noqa: E731
        signatures = {
            "serving_default": (lambda images: {"reconstruction": self(images)}, [images]),
            "encode": (self._serve_encode, [images]),
            "decode": self._serve_decode_signature(),
            "sample": (self._serve_sample, [count("num_images"), count("seed")]),
        }
        if self._scorable():
            signatures["score"] = (self._serve_score, [images, count("num_samples")])
        return signatures

    def _check_serving(self):
        """Raises a `ValueError` if the model cannot be exported yet."""

    def _scorable(self):
        try:
            self._check_scorable()
        except ValueError:
            return False
        return True

    def _serve_encode(self, images):
        """`mean` and `stddev` of the diagonal Gaussian q(z|x), or for a flow
        posterior of its base Gaussian q(z_0|x), plus then `latent`: the flow
        applied to that mean (the code `decode` takes, as `latent(x)`)."""
        posterior = self._posterior(images)
        if not posteriors_lib.is_transformed(posterior):
            return {"mean": posterior.mean(), "stddev": posterior.stddev()}
        base = posterior.distribution
        return {"mean": base.mean(), "stddev": base.stddev(), "latent": _point_latent(posterior)}

    def _serve_decode_signature(self):
        z = tf.TensorSpec([None, *self.latent_shape], tf.float32, name="z")
        return (lambda z: {"images": self._likelihood(z).mean()}), [z]

    def _serve_sample(self, num_images, seed):
        num_images, seed = _at_least(num_images, 1, "num_images"), _at_least(seed, 0, "seed")
        return {"images": self._sample_graph(num_images, tf.stack([seed, 0]))}

    def _sample_graph(self, num_images, seed):
        """Likelihood means at `num_images` draws of `sampling_distribution`
        (the prior unless `fit_sampler` set one), stateless `seed` `[2]` (what
        `sample(n, seed)` returns)."""
        return self._likelihood(self.sampling_distribution.sample(num_images, seed=seed)).mean()

    def _serve_score(self, images, num_samples):
        num_samples = _at_least(num_samples, 1, "num_samples")
        return self._score_graph(images, num_samples, tf.constant([0, 0], tf.int32))

    # ------------------------------------------------------------------ #
    # Serialization
    # ------------------------------------------------------------------ #
    def _common_config(self):
        config = super().get_config()
        config.update(
            data_shape=self.data_shape,
            latent_dim=self.latent_dim,
            # A name is saved as given, a layer whole.
            likelihood=self.likelihood_name if self.likelihood_name in likelihoods_lib.NAMES
            else keras.saving.serialize_keras_object(self.likelihood),
            likelihood_scale=self.likelihood_scale,
            num_samples=self.num_samples,
            seed=self.seed,
        )
        if self.has_kl_term:
            config.update(
                objective=self.objective,
                kl_warmup_steps=self.kl_warmup_steps,
                free_bits=self.free_bits,
                posterior=keras.saving.serialize_keras_object(self.posterior_layer),
                prior=keras.saving.serialize_keras_object(self.prior_layer),
            )
        if self.sampler_layer is not None:
            config["sampler"] = keras.saving.serialize_keras_object(self.sampler_layer)
        if self.penalty_layer is not None:
            config["penalty"] = keras.saving.serialize_keras_object(self.penalty_layer)
        return config

    def get_config(self):
        return {
            **self._common_config(),
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            "decoder": keras.saving.serialize_keras_object(self.decoder),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("encoder", "decoder", "likelihood", "posterior", "prior", "sampler", "penalty"):
            if isinstance(config.get(key), dict):
                config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)


#: Training objectives of `BaseVAE(objective=...)`.
OBJECTIVES = ("elbo", "iwae", "iwae_dreg")


def likelihood_plan(data_shape, kwargs):
    """`(params_shape, input_scale)` for the likelihood in a model's keyword
    arguments (`likelihood`, `likelihood_scale`, with `BaseVAE`'s defaults):
    the decoder's output shape for one example, and the factor the encoder's
    first layer scales pixels by so that the network sees grey levels in
    [0, 1] (`1 / value_scale`: 1 for grey or binary values, 1/255 for 8-bit
    ones). For subclasses that build their networks before `BaseVAE.__init__`."""
    layer = likelihoods_lib.make(kwargs.get("likelihood", "bernoulli"), data_shape, kwargs.get("likelihood_scale", 0.1))
    return layer.params_shape, 1.0 / layer.value_scale
def _point_latent(posterior):
    """The posterior mean, or for a flow posterior the flow at its base mean."""
    if posteriors_lib.is_transformed(posterior):
        return posterior.bijector.forward(posterior.distribution.mean())
    return posterior.mean()


def _batch_kl(posterior, prior, log_q, log_p):
    """Batch-mean KL(q || p): analytic where TFP registers a formula, else the
    Monte Carlo mean of `log_q - log_p()` over the draws `log_q` was taken at."""
    try:
        kl = tfd.kl_divergence(posterior, prior)
    except NotImplementedError:
        kl = log_q - log_p()
    return tf.reduce_mean(kl)


def _stateless_seed(seed):
    """An integer seed as a TFP stateless seed (`None` stays stateful)."""
    if seed is None:
        return None
    return tf.constant([validation.seed("seed", seed), 0], tf.int32)


def _at_least(value, minimum, name):
    """`value` once checked to be >= `minimum` (an `InvalidArgumentError` naming `name` otherwise)."""
    check = tf.debugging.assert_greater_equal(
        value, tf.constant(minimum, value.dtype), message=f"`{name}` must be >= {minimum}"
    )
    with tf.control_dependencies([check]):
        return tf.identity(value)
