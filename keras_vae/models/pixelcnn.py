"""`PixelCNN`: an autoregressive density over maps of discrete codes, the
learned prior of `VQVAE`."""

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from keras_vae import validation
from keras_vae.layers.pixelcnn import GatedPixelCNNBlock
from keras_vae.models.objective import ObjectiveModel

tfd = tfp.distributions


def check_args(filters, num_layers, kernel_size, dropout, names=("filters", "num_layers", "kernel_size", "dropout")):
    """`PixelCNN`'s network arguments, checked; errors call them by `names`
    (`VQVAE` passes its own `prior_*` names)."""
    filters = validation.positive_int(names[0], filters)
    num_layers = validation.positive_int(names[1], num_layers)
    kernel_size = validation.positive_int(names[2], kernel_size)
    if kernel_size < 3 or kernel_size % 2 == 0:
        raise ValueError(f"`{names[2]}` must be odd and >= 3. Received: {names[2]}={kernel_size!r}")
    dropout = validation.non_negative_float(names[3], dropout)
    if dropout >= 1:
        raise ValueError(f"`{names[3]}` must be in [0, 1). Received: {names[3]}={dropout!r}")
    return filters, num_layers, kernel_size, dropout


@keras.saving.register_keras_serializable(package="keras_vae")
class PixelCNN(ObjectiveModel):
    """A gated PixelCNN over `[h, w]` maps of integer codes in `[0, num_codes)`.

    p(z) = prod_i p(z_i | z_<i) in raster order; each conditional is a
    `tfd.Categorical` over the `num_codes` values whose logits come from
    masked convolutions that see only earlier positions. `call(codes)` gives
    those logits, `[B, h, w, num_codes]`; `conditionals(codes)` the
    `tfd.Independent(tfd.Categorical)` they define (event `[h, w]`), whose
    `log_prob(codes)` is log p(codes); `distribution()` the joint p(z) as a
    `tfd.Autoregressive`, which samples position by position.

    Trained with `fit` on code maps (integer arrays or datasets of
    `[B, h, w]`); `loss` is the cross-entropy in nats per code,
    `-log p(z) / (h * w)`.

    Args:
        num_codes: K, the number of code values.
        map_shape: `(h, w)` of a code map.
        filters: channels of the embedding and of every gated block.
        num_layers: gated blocks; the first sees `kernel_size // 2` rows above
            and columns to the left, each further one as many more.
        kernel_size: odd width of the masked convolutions.
        dropout: rate of the dropout inside each gated block's residual
            branch, in training only (PixelCNN++ regularises the same way).
        **kwargs: `keras.Model` arguments.
    """

    metric_names = ("loss",)

    def __init__(self, num_codes, map_shape=(7, 7), filters=64, num_layers=6, kernel_size=3, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.num_codes = validation.positive_int("num_codes", num_codes)
        self.map_shape = validation.int_tuple("map_shape", map_shape)
        if len(self.map_shape) != 2:
            raise ValueError(f"`map_shape` must be (height, width). Received: map_shape={map_shape!r}")
        self.filters, self.num_layers, self.kernel_size, self.dropout = check_args(
            filters, num_layers, kernel_size, dropout
        )
        policy = self.dtype_policy
        self.embedding = keras.layers.Embedding(self.num_codes, self.filters, name="embedding", dtype=policy)
        self.blocks = [
            GatedPixelCNNBlock(
                self.filters, self.kernel_size, first=i == 0, dropout=dropout, name=f"gated_block_{i}", dtype=policy
            )
            for i in range(self.num_layers)
        ]
        self.head = keras.Sequential(
            [
                keras.layers.ReLU(dtype=policy),
                keras.layers.Conv2D(self.filters, 1, activation="relu", dtype=policy),
                keras.layers.Conv2D(self.num_codes, 1, dtype="float32"),  # logits in float32
            ],
            name="head",
        )
        # Optimizer steps taken so far: a model with 0 has never been trained.
        self._steps = self.add_weight(
            name="trained_steps",
            shape=(),
            dtype="int64",
            initializer="zeros",
            trainable=False,
            aggregation="only_first_replica",
        )
        self._trackers = self._make_trackers()
        self._sample_function = None
        self.build((None, *self.map_shape))

    def build(self, input_shape=None):
        shape = (None, *self.map_shape)
        self.embedding.build(shape)
        features = (*shape, self.filters)
        for block in self.blocks:
            block.build((features, features))
        self.head.build(features)
        self.built = True

    @property
    def trained_steps(self):
        """Training steps taken by `fit` / `train_on_batch` so far (0 for an
        untrained prior; a custom loop that trains it on its own loss should
        add its steps with `_steps.assign_add`)."""
        return int(self._steps.numpy())

    def call(self, codes, training=False):
        """Logits of p(z_i | z_<i), `[B, h, w, num_codes]`, for int codes `[B, h, w]`."""
        features = self.embedding(tf.cast(codes, "int32"))
        v = h = features
        for block in self.blocks:
            v, h = block((v, h), training=training)
        return self.head(h)

    def conditionals(self, codes, temperature=1.0, training=False):
        """`tfd.Independent(tfd.Categorical)` of p(z_i | z_<i) at every position
        of `codes` (`[..., h, w]`), logits divided by `temperature`."""
        codes = tf.convert_to_tensor(codes)
        lead = tf.shape(codes)[:-2]
        logits = self(tf.reshape(codes, [-1, *self.map_shape]), training=training)
        logits = tf.reshape(tf.cast(logits, tf.float32), tf.concat([lead, [*self.map_shape, self.num_codes]], 0))
        return tfd.Independent(tfd.Categorical(logits=logits / temperature), reinterpreted_batch_ndims=2)

    def distribution(self, temperature=1.0, num_steps=None):
        """The joint p(z) over code maps as a `tfd.Autoregressive` (event
        `[h, w]`); its `sample` runs the network `num_steps` (default h * w)
        times, each fixing one more position."""
        return tfd.Autoregressive(
            lambda codes: self.conditionals(codes, temperature),
            sample0=tf.zeros(self.map_shape, tf.int32),
            num_steps=int(np.prod(self.map_shape)) if num_steps is None else num_steps,
        )

    def log_prob(self, codes):
        """log p(codes) in nats, `[B]`, for int code maps `[B, h, w]`."""
        codes = validation.check_indices("codes", codes, self.map_shape, self.num_codes)
        return self.conditionals(codes).log_prob(codes)

    def sample(self, num_samples, seed=None, temperature=1.0):
        """Draws `num_samples` code maps, int32 `[num_samples, h, w]`, one
        position at a time. The same integer `seed` gives the same maps;
        `temperature` < 1 sharpens every conditional, > 1 flattens it."""
        num_samples = validation.positive_int("num_samples", num_samples)
        temperature = validation.positive_float("temperature", temperature)
        if seed is None:
            seed = int(np.random.randint(0, 2**31 - 1))
        seed = validation.seed("seed", seed)
        if self._sample_function is None:
            self._sample_function = tf.function(self.sample_graph)
        return self._sample_function(
            tf.constant(num_samples, tf.int32), tf.constant([seed, 0], tf.int32), tf.constant(temperature, tf.float32)
        )

    def sample_graph(self, num_samples, seed, temperature=1.0):
        """`sample` on tensors, without checks: int32 `num_samples`, a
        stateless `seed` `[2]`, float `temperature`."""
        # `num_steps` enters as a tensor, so the steps run in one
        # `tf.while_loop` instead of h * w traced copies of the network.
        steps = tf.constant(int(np.prod(self.map_shape)), tf.int32)
        return self.distribution(temperature, steps).sample(num_samples, seed=seed)

    def compute_terms(self, x, training=False):
        codes = tf.cast(x, tf.int32)
        if training:
            self._steps.assign_add(1)
        nll = -self.conditionals(codes, training=training).log_prob(codes)
        return {"loss": tf.reduce_mean(nll) / float(np.prod(self.map_shape))}

    def _check_data(self, name, data):
        data = validation.input_part(data)
        if validation.check_dataset(name, data, self.map_shape, integer=True):
            return
        if isinstance(data, (np.ndarray, list)) or (isinstance(data, tf.Tensor) and tf.executing_eagerly()):
            validation.check_indices(name, data, self.map_shape, self.num_codes)

    def get_config(self):
        return {
            **super().get_config(),
            "num_codes": self.num_codes,
            "map_shape": self.map_shape,
            "filters": self.filters,
            "num_layers": self.num_layers,
            "kernel_size": self.kernel_size,
            "dropout": self.dropout,
        }
