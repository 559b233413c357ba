"""Vector quantization (van den Oord et al. 2017, "Neural Discrete
Representation Learning") as a Keras layer, plus a codebook-usage metric.

For encoder outputs z_e (last axis of size D) the layer picks, per position,
the nearest of K codebook vectors e_k, k = argmin_j ||z_e - e_j||^2, and
returns the straight-through quantization z_e + sg(e_k - z_e): the forward
value is e_k, the gradient flows to z_e unchanged. With N positions per
example it also returns, averaged over the batch,

    codebook_loss   = sum_positions ||sg(z_e) - e_k||^2
    commitment_loss = sum_positions ||z_e - sg(e_k)||^2

and the objective adds `penalty = codebook_loss + beta * commitment_loss`
(`codebook_update="loss"`). With `codebook_update="ema"` the codebook is not
trained by gradients; after every training step, with n_k the number of
positions assigned to code k and s_k the sum of their z_e (both summed over
all replicas),

    N_k <- decay * N_k + (1 - decay) * n_k
    S_k <- decay * S_k + (1 - decay) * s_k
    e_k <- S_k / N~_k,  N~_k = (N_k + eps) / (sum_j N_j + K eps) * sum_j N_j

(Laplace smoothing; codes never assigned keep their vector), and the
penalty is `beta * commitment_loss` alone.

Codebook health: with `dead_code_steps` set, a code unused for that many
training steps is restarted at a random current encoder output; with
`init_from_first_batch`, the first training batch's encoder outputs seed the
whole codebook. Under `tf.distribute` the statistics are summed across
replicas and the vectors used for (re)initialisation come from the first
replica, so every replica applies the same update.
"""

import keras
import tensorflow as tf

from keras_vae import validation

CODEBOOK_UPDATES = ("loss", "ema")


def _replica_info():
    ctx = tf.distribute.get_replica_context()
    if ctx is None or ctx.num_replicas_in_sync == 1:
        return None, 0
    return ctx, ctx.replica_id_in_sync_group


def _sum_over_replicas(*values):
    ctx, _ = _replica_info()
    if ctx is None:
        return values
    return tuple(ctx.all_reduce("sum", list(values)))


def _from_first_replica(value):
    """The first replica's `value`, on every replica."""
    ctx, replica = _replica_info()
    if ctx is None:
        return value
    keep = tf.cast(tf.equal(replica, 0), value.dtype)
    return ctx.all_reduce("sum", value * keep)


@keras.saving.register_keras_serializable(package="keras_vae")
class VectorQuantizer(keras.layers.Layer):
    """Nearest-neighbour quantization against a learned codebook.

    Args:
        num_codes: K, the number of codebook vectors.
        code_dim: D, their dimension (the last axis of the inputs).
        beta: weight of the commitment loss (0.25 in van den Oord et al.).
        codebook_update: `"loss"` (the codebook loss trains the codebook) or
            `"ema"` (exponential moving averages of the assigned encodings).
        decay: EMA decay, in (0, 1).
        epsilon: Laplace smoothing of the EMA counts, > 0.
        dead_code_steps: restart a code unused for this many training steps
            (None: never).
        init_from_first_batch: set the codebook from the first training
            batch's encoder outputs.
        codebook_initializer: Keras initializer (name, config or object) of
            the codebook; default (None): uniform with variance 1/D, seeded
            by `seed`. keras.io's VQ-VAE uses `"random_uniform"` (±0.05).
        seed: integer seed for the (re)initialisation draws.

    Call: `quantized, indices, terms = layer(z_e, training)` with `z_e` of
    shape `[B, ..., D]`; `indices` is int32 `[B, ...]`; `terms` holds the
    scalars `codebook_loss`, `commitment_loss`, `penalty` and the per-code
    counts `code_counts` `[K]` of this (replica's) batch.
    """

    def __init__(
        self,
        num_codes,
        code_dim,
        beta=0.25,
        codebook_update="loss",
        decay=0.99,
        epsilon=1e-5,
        dead_code_steps=None,
        init_from_first_batch=False,
        codebook_initializer=None,
        seed=0,
        **kwargs,
    ):
        kwargs["dtype"] = "float32"  # distances and EMA statistics in float32
        super().__init__(**kwargs)
        self.num_codes = validation.positive_int("num_codes", num_codes)
        self.code_dim = validation.positive_int("code_dim", code_dim)
        self.beta = validation.non_negative_float("beta", beta)
        if codebook_update not in CODEBOOK_UPDATES:
            raise ValueError(
                f"`codebook_update` must be one of {CODEBOOK_UPDATES}. "
                f"Received: codebook_update={codebook_update!r}"
            )
        self.codebook_update = codebook_update
        self.decay = validation.non_negative_float("decay", decay)
        if not 0 < self.decay < 1:
            raise ValueError(f"`decay` must be in (0, 1). Received: decay={decay!r}")
        self.epsilon = validation.positive_float("epsilon", epsilon)
        self.dead_code_steps = (
            None if dead_code_steps is None else validation.positive_int("dead_code_steps", dead_code_steps)
        )
        self.init_from_first_batch = bool(init_from_first_batch)
        self.codebook_initializer = None
        if codebook_initializer is not None:
            try:
                self.codebook_initializer = keras.initializers.get(codebook_initializer)
            except ValueError as error:
                raise ValueError(
                    "`codebook_initializer` must be a Keras initializer (name, config dict or instance) or None. "
                    f"Received: codebook_initializer={codebook_initializer!r}"
                ) from error
        self.seed = validation.seed("seed", seed)

    def build(self, input_shape=None):
        if input_shape is not None and input_shape[-1] not in (None, self.code_dim):
            raise ValueError(
                f"The inputs' last axis must be `code_dim`={self.code_dim}. "
                f"Received: input_shape={tuple(input_shape)}"
            )
        state = {"trainable": False, "aggregation": "only_first_replica"}
        k, d = self.num_codes, self.code_dim
        self.codebook = self.add_weight(
            name="codebook",
            shape=(k, d),
            initializer=self.codebook_initializer
            or keras.initializers.VarianceScaling(1.0, "fan_out", "uniform", seed=self.seed),
            trainable=self.codebook_update == "loss",
            aggregation="only_first_replica",
        )
        if self.codebook_update == "ema":
            self.ema_counts = self.add_weight(name="ema_counts", shape=(k,), initializer="zeros", **state)
            self.ema_sums = self.add_weight(name="ema_sums", shape=(k, d), initializer="zeros", **state)
        self.steps = self.add_weight(name="steps", shape=(), dtype="int64", initializer="zeros", **state)
        if self.dead_code_steps is not None:
            self.unused_steps = self.add_weight(
                name="unused_steps", shape=(k,), dtype="int64", initializer="zeros", **state
            )
        self.built = True

    # ------------------------------------------------------------------ #
    def code_indices(self, z_e):
        """Indices of the nearest codes, int32 `[B, ...]` (no side effects)."""
        flat = tf.reshape(tf.cast(z_e, tf.float32), [-1, self.code_dim])
        book = tf.convert_to_tensor(self.codebook)
        distances = (
            tf.reduce_sum(tf.square(flat), 1, keepdims=True)
            - 2.0 * tf.matmul(flat, book, transpose_b=True)
            + tf.reduce_sum(tf.square(book), 1)[None, :]
        )
        indices = tf.argmin(distances, axis=1, output_type=tf.int32)
        return tf.reshape(indices, tf.shape(z_e)[:-1])

    def lookup(self, indices):
        """Codebook vectors for integer `indices`, `[..., D]`."""
        return tf.gather(self.codebook, indices)

    def call(self, z_e, training=False):
        z_e = tf.cast(z_e, tf.float32)
        if training and self.init_from_first_batch:
            self._init_from(z_e)
        indices = self.code_indices(z_e)
        codes = self.lookup(indices)
        axes = list(range(1, z_e.shape.rank))
        codebook_loss = tf.reduce_mean(tf.reduce_sum(tf.square(tf.stop_gradient(z_e) - codes), axes))
        commitment_loss = tf.reduce_mean(tf.reduce_sum(tf.square(z_e - tf.stop_gradient(codes)), axes))
        penalty = self.beta * commitment_loss
        if self.codebook_update == "loss":
            penalty += codebook_loss
        flat_indices = tf.reshape(indices, [-1])
        counts = tf.math.unsorted_segment_sum(tf.ones_like(flat_indices, tf.float32), flat_indices, self.num_codes)
        if training:
            self._after_step(tf.reshape(z_e, [-1, self.code_dim]), flat_indices, counts)
        quantized = z_e + tf.stop_gradient(codes - z_e)  # straight-through estimator
        terms = {
            "codebook_loss": codebook_loss,
            "commitment_loss": commitment_loss,
            "penalty": penalty,
            "code_counts": counts,
        }
        return quantized, indices, terms

    # ------------------------------------------------------------------ #
    def _draw(self, flat, num):
        """`num` rows of `flat` drawn uniformly (with replacement), the same on every replica."""
        key = tf.stack([tf.constant(self.seed, tf.int64), self.steps.value])
        rows = tf.random.stateless_uniform([num], key, maxval=tf.shape(flat)[0], dtype=tf.int32)
        return _from_first_replica(tf.gather(flat, rows))

    def _init_from(self, z_e):
        def init():
            fresh = self._draw(tf.reshape(z_e, [-1, self.code_dim]), self.num_codes)
            self.codebook.assign(fresh)
            if self.codebook_update == "ema":
                self.ema_counts.assign(tf.zeros_like(self.ema_counts))
                self.ema_sums.assign(tf.zeros_like(self.ema_sums))
            return tf.constant(True)

        tf.cond(tf.equal(self.steps, 0), init, lambda: tf.constant(False))

    def _after_step(self, flat, flat_indices, counts):
        if self.codebook_update == "ema":
            sums = tf.math.unsorted_segment_sum(flat, flat_indices, self.num_codes)
            counts_all, sums = _sum_over_replicas(counts, sums)
            d = self.decay
            self.ema_counts.assign(d * self.ema_counts + (1 - d) * counts_all)
            self.ema_sums.assign(d * self.ema_sums + (1 - d) * sums)
            total = tf.reduce_sum(self.ema_counts)
            smoothed = (self.ema_counts + self.epsilon) / (total + self.num_codes * self.epsilon) * total
            updated = self.ema_sums / smoothed[:, None]
            self.codebook.assign(tf.where((self.ema_counts > 0)[:, None], updated, self.codebook))
        else:
            (counts_all,) = _sum_over_replicas(counts)
        if self.dead_code_steps is not None:
            unused = tf.where(counts_all > 0, tf.zeros_like(self.unused_steps), self.unused_steps + 1)
            dead = unused >= self.dead_code_steps
            fresh = self._draw(flat, self.num_codes)
            self.codebook.assign(tf.where(dead[:, None], fresh, self.codebook))
            if self.codebook_update == "ema":
                # A restarted code starts its averages afresh at its new vector.
                self.ema_counts.assign(tf.where(dead, tf.zeros_like(self.ema_counts), self.ema_counts))
                self.ema_sums.assign(tf.where(dead[:, None], tf.zeros_like(self.ema_sums), self.ema_sums))
            self.unused_steps.assign(tf.where(dead, tf.zeros_like(unused), unused))
        self.steps.assign_add(1)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.pop("dtype", None)
        config.update(
            num_codes=self.num_codes,
            code_dim=self.code_dim,
            beta=self.beta,
            codebook_update=self.codebook_update,
            decay=self.decay,
            epsilon=self.epsilon,
            dead_code_steps=self.dead_code_steps,
            init_from_first_batch=self.init_from_first_batch,
            codebook_initializer=(
                None if self.codebook_initializer is None
                else keras.initializers.serialize(self.codebook_initializer)
            ),
            seed=self.seed,
        )
        return config


@keras.saving.register_keras_serializable(package="keras_vae")
class CodebookUsage(keras.metrics.Metric):
    """Codebook use accumulated over all batches since the last reset (an epoch
    in `fit`): `perplexity` = exp(entropy of the code frequencies), between 1
    and K, and `codebook_usage`, the fraction of codes used at least once."""

    def __init__(self, num_codes, name="codebook", **kwargs):
        super().__init__(name=name, **kwargs)
        self.num_codes = validation.positive_int("num_codes", num_codes)
        self.counts = self.add_variable(shape=(self.num_codes,), initializer="zeros", name="counts", aggregation="sum")

    def update_state(self, code_counts):
        self.counts.assign_add(tf.cast(code_counts, self.counts.dtype))

    def result(self):
        total = tf.reduce_sum(self.counts)
        p = self.counts / tf.maximum(total, 1.0)
        entropy = -tf.reduce_sum(tf.where(p > 0, p * tf.math.log(tf.where(p > 0, p, 1.0)), 0.0))
        used = tf.reduce_mean(tf.cast(self.counts > 0, tf.float32))
        return {"perplexity": tf.exp(entropy), "codebook_usage": used}

    def get_config(self):
        return {**super().get_config(), "num_codes": self.num_codes}
