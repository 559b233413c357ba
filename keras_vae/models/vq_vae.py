"""`VQVAE`: a discrete latent map (van den Oord et al. 2017) on the shared base."""

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from keras_vae import distribute, validation
from keras_vae.layers import networks
from keras_vae.layers.vector_quantizer import CodebookUsage, VectorQuantizer
from keras_vae.models.base import BaseVAE, likelihood_plan
from keras_vae.models.pixelcnn import PixelCNN, check_args as check_prior_args

tfd = tfp.distributions


@keras.saving.register_keras_serializable(package="keras_vae")
class VQVAE(BaseVAE):
    """A VQ-VAE: conv encoder to a map of `code_dim`-vectors, each replaced by
    its nearest of `num_codes` codebook vectors, conv decoder.

    It differs from `BaseVAE` only in its latent and its loss terms: the
    objective is `reconstruction_loss + codebook_loss + beta * commitment_loss`
    (`codebook_update="ema"` drops the codebook loss and updates the codebook
    by moving averages), with the quantizer's terms summed over the code map
    like the reconstruction term is summed over the pixels. `fit` and
    `evaluate` report those terms plus `perplexity` and `codebook_usage`
    (fraction of codes used) accumulated over the epoch.

    `encode(x)` gives q(z|x) as a `tfd.Distribution` over the code map
    (one-hot at the nearest code, event shape `[h, w]`), `encode_indices(x)`
    the int32 indices, `decode_indices(indices)` p(x|z) for a code map.

    Generation needs a prior over code maps: `self.pixelcnn`, a gated
    `PixelCNN` trained after the autoencoder with
    `model.fit_prior(images, epochs=...)` (or `model.pixelcnn.fit` on
    `model.code_maps(images)`). Then `prior` is that p(z) as a `tfd`
    distribution and `sample(n, seed, temperature)` decodes code maps drawn
    from it. `fit` never touches the prior's weights; both save and load
    together in one `.keras` file.

    Args:
        data_shape: `(H, W, C)`.
        num_codes: K, the codebook size.
        code_dim: D, the dimension of the codes.
        filters: channels of the encoder's stride-2 convolutions (reversed in
            the decoder); the code map is `H / 2**len(filters)` on a side.
        kernel_size, activation: of the convolutions.
        beta, codebook_update, decay, epsilon, dead_code_steps,
        init_from_first_batch, codebook_initializer: see `keras_vae.layers.VectorQuantizer`.
        prior_filters, prior_layers, prior_kernel_size, prior_dropout:
            `filters`, `num_layers`, `kernel_size` and `dropout` of the
            `PixelCNN` prior.
        **kwargs: `BaseVAE` arguments (`likelihood`, default `"gaussian"`,
            `likelihood_scale`, `seed`) and `keras.Model` arguments.
    """

    has_kl_term = False  # a codebook loss, no KL for warm-up or free bits

    metric_names = ("loss", "reconstruction_loss", "codebook_loss", "commitment_loss")

    def __init__(
        self,
        data_shape=(28, 28, 1),
        num_codes=128,
        code_dim=16,
        filters=(32, 64),
        kernel_size=3,
        activation="relu",
        beta=0.25,
        codebook_update="loss",
        decay=0.99,
        epsilon=1e-5,
        dead_code_steps=None,
        init_from_first_batch=False,
        codebook_initializer=None,
        likelihood="gaussian",
        prior_filters=64,
        prior_layers=6,
        prior_kernel_size=3,
        prior_dropout=0.0,
        **kwargs,
    ):
        data_shape, filters, kernel_size, activation = validation.conv_args(
            "VQVAE", data_shape, filters, kernel_size, activation
        )
        code_dim = validation.positive_int("code_dim", code_dim)
        dtype = kwargs.get("dtype")
        params_shape, input_scale = likelihood_plan(data_shape, {**kwargs, "likelihood": likelihood})
        encoder = networks.conv_map_encoder(data_shape, filters, kernel_size, activation, code_dim, dtype=dtype,
                                            input_scale=input_scale)
        decoder = networks.conv_map_decoder(
            encoder.output_shape[1:], filters[::-1], kernel_size, activation, params_shape, dtype=dtype
        )
        if kwargs.get("seed") is None:
            kwargs["seed"] = int(np.random.randint(0, 2**31 - 1))
        # Assigned before `BaseVAE.__init__` builds and locks the model.
        self.quantizer = VectorQuantizer(
            num_codes,
            code_dim,
            beta=beta,
            codebook_update=codebook_update,
            decay=decay,
            epsilon=epsilon,
            dead_code_steps=dead_code_steps,
            init_from_first_batch=init_from_first_batch,
            codebook_initializer=codebook_initializer,
            seed=kwargs["seed"],
        )
        self.quantizer.build((None, *encoder.output_shape[1:]))
        prior_filters, prior_layers, prior_kernel_size, prior_dropout = check_prior_args(
            prior_filters, prior_layers, prior_kernel_size, prior_dropout,
            names=("prior_filters", "prior_layers", "prior_kernel_size", "prior_dropout"),
        )
        self.pixelcnn = PixelCNN(
            self.quantizer.num_codes,
            encoder.output_shape[1:3],
            filters=prior_filters,
            num_layers=prior_layers,
            kernel_size=prior_kernel_size,
            dropout=prior_dropout,
            name="pixelcnn",
            dtype=dtype,
        )
        super().__init__(
            encoder, decoder, data_shape=data_shape, latent_dim=code_dim, likelihood=likelihood, **kwargs
        )
        self.filters, self.kernel_size, self.activation = filters, kernel_size, activation
        self._code_map_function = None

    def _make_trackers(self):
        return super()._make_trackers() + [CodebookUsage(self.num_codes, name="codebook")]

    @property
    def num_codes(self):
        return self.quantizer.num_codes

    @property
    def code_map_shape(self):
        """`(h, w)`: the shape of one example's code map."""
        return self.latent_shape[:-1]

    @property
    def latent_shape(self):
        return tuple(self.encoder.output_shape[1:])

    def _encoder_output_shape(self, encoder):
        return tuple(encoder.output_shape[1:])

    @property
    def prior(self):
        """p(z) over code maps: the learned `PixelCNN` prior as a
        `tfd.Autoregressive` (event `[h, w]`), or None until it is trained
        (`fit_prior`)."""
        return self.pixelcnn.distribution() if self.pixelcnn.trained_steps else None

    def _trained_variables(self):
        # `fit` trains the autoencoder; the prior is trained by `fit_prior`.
        prior = {id(v) for v in self.pixelcnn.trainable_variables}
        return [v for v in self.trainable_variables if id(v) not in prior]

    def make_posterior(self, params):
        indices = self.quantizer.code_indices(params)
        one_hot = tf.one_hot(indices, self.num_codes)
        return tfd.Independent(tfd.Categorical(probs=one_hot), reinterpreted_batch_ndims=2)

    def encode_indices(self, x):
        """The nearest-code indices of `x`, int32 `[B, h, w]`."""
        self._check_data("x", x, dataset=False)
        return self.quantizer.code_indices(self.encoder(x))

    def decode_indices(self, indices):
        """p(x|z) for int code maps `[B, h, w]` with values in `[0, num_codes)`."""
        indices = validation.check_indices("indices", indices, self.code_map_shape, self.num_codes)
        return self._likelihood(self.quantizer.lookup(indices))

    def latent(self, x, training=False):
        """The quantized code map of `x`, `[B, h, w, code_dim]`."""
        return self.quantizer.lookup(self.quantizer.code_indices(self.encoder(x, training=training)))

    def latent_terms(self, x, training=False):
        z_e = tf.cast(self.encoder(x, training=training), tf.float32)
        quantized, _, terms = self.quantizer(z_e, training=training)
        return quantized[None], {
            "codebook_loss": terms["codebook_loss"],
            "commitment_loss": terms["commitment_loss"],
            "penalty": terms["penalty"],
            "codebook": terms["code_counts"],
        }

    def code_maps(self, x, batch_size=256):
        """The code maps of every example in `x` (an array of images or a
        dataset of batches of images, or of `(images, labels)`), as int32
        numpy `[N, h, w]`."""
        x = validation.input_part(x)
        self._check_data("x", x)
        if not isinstance(x, tf.data.Dataset):
            x = tf.data.Dataset.from_tensor_slices(np.asarray(x)).batch(validation.positive_int("batch_size", batch_size))
        elif x.cardinality() == tf.data.INFINITE_CARDINALITY:
            raise ValueError("`x` must be a finite dataset (code maps are collected for all of it). "
                             "Received: an infinite dataset (e.g. from `.repeat()`)")
        if self._code_map_function is None:
            self._code_map_function = tf.function(
                lambda images: self.quantizer.code_indices(self.encoder(images, training=False)),
                reduce_retracing=True,
            )
        maps = [self._code_map_function(keras.utils.unpack_x_y_sample_weight(b)[0]).numpy() for b in x]
        return np.concatenate(maps) if maps else np.zeros((0, *self.code_map_shape), "int32")

    def fit_prior(self, x, validation_data=None, epochs=1, batch_size=128, shuffle_seed=0, **kwargs):
        """Trains the PixelCNN prior with `self.pixelcnn.fit` on the code maps
        of `x` (and of `validation_data`: images, not codes). Compiles it with
        Adam first unless `self.pixelcnn` was compiled; `kwargs` go to `fit`
        (`callbacks`, `verbose`, ...). Returns the `History`.

        Under several workers (`MultiWorkerMirroredStrategy`, which cannot
        split numpy arrays) every worker collects all code maps and feeds
        them as a dataset shuffled with `shuffle_seed`, global
        batches of `batch_size` (the last partial one dropped), of which
        each worker keeps its share."""
        codes = self.code_maps(x)
        if validation_data is not None:
            validation_data = (self.code_maps(validation_data),)
        if not self.pixelcnn.compiled:
            self.pixelcnn.compile()
        if distribute.is_multi_worker(self.distribute_strategy):
            if len(codes) < batch_size:
                raise ValueError(
                    f"`batch_size` must be at most the number of training examples ({len(codes)}) under "
                    f"several workers (partial batches are dropped). Received: batch_size={batch_size}"
                )
            codes = distribute.shardable(tf.data.Dataset.from_tensor_slices(codes).shuffle(
                len(codes), seed=shuffle_seed, reshuffle_each_iteration=True).batch(batch_size, drop_remainder=True))
            if validation_data is not None:
                validation_data = distribute.shardable(
                    tf.data.Dataset.from_tensor_slices(validation_data[0]).batch(batch_size))
            batch_size = None
        return self.pixelcnn.fit(
            codes, validation_data=validation_data, epochs=epochs, batch_size=batch_size, **kwargs
        )

    def get_compile_config(self):
        # The prior's optimizer (learning rate, moments) is saved with the
        # model like the autoencoder's; Keras saves only the outer model's.
        config = super().get_compile_config()
        if self.pixelcnn.compiled:
            config = dict(config or {}, prior=self.pixelcnn.get_compile_config())
        return config

    def compile_from_config(self, config):
        config = dict(config)
        prior = config.pop("prior", None)
        if config:
            super().compile_from_config(config)
        if prior is not None:
            self.pixelcnn.compile_from_config(prior)

    def _check_prior(self, what):
        if not self.pixelcnn.trained_steps:
            raise ValueError(
                f"VQVAE.{what} needs the learned prior over code maps, and this model's prior "
                "has not been trained yet. Train it on the code maps of your training images: "
                "`model.fit_prior(images, epochs=...)` in Python, or "
                "`keras-vae train-prior MODEL.keras` on the command line."
            )

    def _check_scorable(self):
        self._check_prior("score")

    def _score_graph(self, x, num_samples, seed):
        """log p(x|z) + log p(z) at z, the code map of x. The posterior is a
        point mass, so this is both the ELBO and the importance-weighted
        estimate for every k (`num_samples` and `seed` play no part)."""
        del num_samples, seed
        x = tf.cast(x, tf.float32)
        codes = self.quantizer.code_indices(self.encoder(x))
        log_p = self._likelihood(self.quantizer.lookup(codes)).log_prob(x)
        log_p += self.pixelcnn.conditionals(codes).log_prob(codes)
        return {"elbo": log_p, "log_likelihood": log_p}

    def _check_serving(self):
        self._check_prior("export_serving")

    def _serve_encode(self, images):
        return {"indices": self.quantizer.code_indices(self.encoder(images))}

    def _serve_decode_signature(self):
        spec = tf.TensorSpec([None, *self.code_map_shape], tf.int32, name="indices")

        def decode(indices):
            checks = [
                tf.debugging.assert_non_negative(indices, message="`indices` must be >= 0"),
                tf.debugging.assert_less(
                    indices, self.num_codes, message=f"`indices` must be < num_codes = {self.num_codes}"
                ),
            ]
            with tf.control_dependencies(checks):
                return {"images": self._likelihood(self.quantizer.lookup(indices)).mean()}

        return decode, [spec]

    def _sample_graph(self, num_images, seed):
        codes = self.pixelcnn.sample_graph(num_images, seed)
        return self._likelihood(self.quantizer.lookup(codes)).mean()

    def sample(self, num_samples, seed=None, temperature=1.0):
        """Draws `num_samples` code maps from the learned prior (position by
        position, each conditional's logits divided by `temperature`) and
        returns the likelihood means of their decodings. The same integer
        `seed` gives the same images."""
        self._check_prior("sample")
        codes = self.pixelcnn.sample(num_samples, seed=seed, temperature=temperature)
        return self._likelihood(self.quantizer.lookup(codes)).mean()

    def fit_sampler(self, data, kind="gmm", **kwargs):
        """Refused: a VQ-VAE's samples come from its PixelCNN prior over code
        maps (`train_prior`), not from a distribution over a vector latent."""
        raise ValueError(
            "`fit_sampler` fits a distribution to vector codes; a VQVAE draws its code maps from its PixelCNN "
            f"prior instead (train it with `train_prior`). Received: fit_sampler(kind={kind!r}) on a VQVAE"
        )

    def get_config(self):
        config = self._common_config()
        config.pop("latent_dim")
        quantizer = self.quantizer.get_config()
        for key in ("name", "trainable", "seed"):
            quantizer.pop(key, None)
        config.update(
            quantizer,
            filters=self.filters,
            kernel_size=self.kernel_size,
            activation=self.activation,
            prior_filters=self.pixelcnn.filters,
            prior_layers=self.pixelcnn.num_layers,
            prior_kernel_size=self.pixelcnn.kernel_size,
            prior_dropout=self.pixelcnn.dropout,
        )
        return config

