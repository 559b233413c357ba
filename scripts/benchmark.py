"""Training speed of the TFP-based `model.fit` contract against a hand-written floor.

For `VAE` and `ConvVAE` (default architectures), `ResidualConvVAE` (the
`resnet_vae_mnist` networks: `ConvVAE(network="residual", filters=(16, 32, 32),
blocks_per_stage=2, activation="elu", latent_dim=32)`) and `IAFConvVAE` (the
same with `posterior=posteriors.IAF(32)`), Bernoulli likelihood, batch 128,
real MNIST, statically binarized so both sides see identical batches, this
trains, in one process and interleaved round by round:

  (a) the zoo model through `model.fit`;
  (b) a minimal hand-written Keras 3 loop: the same Keras networks, Adam, and
      the same ELBO written with plain TensorFlow ops (no tfd, no metrics;
      for IAF the flow steps by hand on the same autoregressive networks and
      a Monte Carlo KL), a `tf.function` running as many steps per call as
      `fit` does: the floor;
  (c) keras.io's VAE pattern: the same plain-op ELBO in an overridden
      `train_step` with three `Mean` trackers, through `model.fit` with the
      zoo model's `steps_per_execution`;

each model in its default precision on this machine (`ConvVAE`: `mixed_bfloat16`
on a CPU with bfloat16 instructions, `keras_vae.precision`; the table's dtype
column; `--dtypes float32,mixed_bfloat16` times each in both), (b) and (c) on the
same networks, so in the same precision, casting
their outputs to float32 as the model does; with `jit_compile` on and off,
and prints samples/s and the ratios (a)/(b)
(what the whole package costs against the floor) and (a)/(c) (what the
TFP-based contract costs against plain ops under the same `fit`).
Each round times `--steps` steps after a warm-up (tracing/compilation is not
timed), alternating which side goes first; the reported figure is the median
over `--rounds` rounds.

    python scripts/benchmark.py --manual-dir ../shared/data/mnist
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_vae  # noqa: E402
from keras_vae import data, posteriors  # noqa: E402

_RESNET = {"network": "residual", "filters": (16, 32, 32), "blocks_per_stage": 2, "activation": "elu", "latent_dim": 32}

#: `--models` names -> (model class, constructor arguments but the seed).
MODELS = {
    "VAE": (keras_vae.VAE, lambda: {}),
    "ConvVAE": (keras_vae.ConvVAE, lambda: {}),
    "ResidualConvVAE": (keras_vae.ConvVAE, lambda: dict(_RESNET)),
    "IAFConvVAE": (keras_vae.ConvVAE, lambda: {**_RESNET, "posterior": posteriors.IAF(32)}),
}


def build(name, dtype=None):
    """The model `name` of `MODELS`, seeded: identical networks on every side;
    `dtype` `None`: the model's default precision on this machine."""
    model_class, kwargs = MODELS[name]
    keras.utils.set_random_seed(0)
    return model_class(seed=0, dtype=dtype, **kwargs())


def make_dataset(args):
    """Real MNIST, statically binarized, held in memory: the input pipeline
    costs the same on both sides and stays out of the measurement."""
    ds = data.load_dataset(
        "mnist", split="train", batch_size=10_000, binarize="static", shuffle=False,
        data_dir=args.data_dir, manual_dir=args.manual_dir,
    )
    images = tf.concat(list(ds), axis=0)
    return (
        tf.data.Dataset.from_tensor_slices(images)
        .batch(args.batch_size, drop_remainder=True)
        .repeat()
        .prefetch(tf.data.AUTOTUNE)
    )


class _StepTimer(keras.callbacks.Callback):
    """Times the steps from the first execution at or after `warmup`, inside
    one `fit` call (batch hooks fire once per `steps_per_execution` steps)."""

    def __init__(self, warmup):
        super().__init__()
        self.warmup, self.first = warmup, None

    def on_train_batch_begin(self, batch, logs=None):
        if self.first is None and batch >= self.warmup:
            self.first, self.start = batch, time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.last, self.logs = batch, logs

    def on_train_end(self, logs=None):
        float(self.logs["loss"])  # the last step has finished
        self.per_step = (time.perf_counter() - self.start) / (self.last + 1 - self.first)


def _time_fit(model, ds, steps, warmup):
    """Seconds per steady-state step of `model.fit`: tracing and the iterator's
    set-up and tear-down (once per `fit` call) are left out, as for the floor."""
    timer = _StepTimer(warmup)
    # shuffle=False: a dataset keeps its own order (Keras warns about its default True).
    model.fit(ds, steps_per_epoch=warmup + steps, epochs=1, verbose=0, callbacks=[timer], shuffle=False)
    return timer.per_step


def zoo_fit(name, dtype, ds, jit, steps, warmup):
    """(a) The zoo model, compiled with its defaults but for `jit_compile`."""
    model = build(name, dtype)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=jit)
    return _time_fit(model, ds, steps, warmup)


def plain_negative_elbo(networks, x, noise_seed):
    """The same objective as the zoo's Bernoulli VAE, written with plain ops:
    `networks` is `(encoder, decoder)`, or `(encoder, decoder, iaf_steps)`
    for an IAF posterior (the posterior's autoregressive networks)."""
    encoder, decoder, *flow = networks
    params = tf.cast(encoder(x, training=True), tf.float32)  # as the zoo model: float32 under mixed precision
    latent_dim = decoder.input_shape[-1]
    mean, raw_scale, context = params[:, :latent_dim], params[:, latent_dim:2 * latent_dim], params[:, 2 * latent_dim:]
    scale = tf.nn.softplus(raw_scale) + 1e-5
    eps = tf.random.stateless_normal(tf.shape(mean), noise_seed)
    z = mean + scale * eps
    if not flow:
        kl = 0.5 * tf.reduce_sum(tf.square(scale) + tf.square(mean) - 1 - 2 * tf.math.log(scale), -1)
    else:  # z <- s z + (1 - s) m per step, order reversed between steps; log q by the forward pass
        log_q = -tf.reduce_sum(0.5 * tf.square(eps) + tf.math.log(scale) + 0.5 * tf.math.log(2 * 3.141592653589793), -1)
        for i, network in enumerate(flow[0]):
            if i:
                z = z[:, ::-1]
            out = tf.cast(network(z, context), tf.float32)
            gate = out[..., 1] + 2.0
            s = tf.sigmoid(gate)
            z = s * z + (1 - s) * out[..., 0]
            log_q -= tf.reduce_sum(tf.math.log_sigmoid(gate), -1)
        kl = log_q + tf.reduce_sum(0.5 * tf.square(z) + 0.5 * tf.math.log(2 * 3.141592653589793), -1)
    logits = tf.cast(decoder(z, training=True), tf.float32)
    reconstruction = tf.reduce_mean(
        tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(labels=x, logits=logits), [1, 2, 3])
    )
    return reconstruction, tf.reduce_mean(kl)


def _networks(name, dtype):
    reference = build(name, dtype)  # only for identical networks
    if isinstance(reference.posterior_layer, posteriors.IAF):
        return reference.encoder, reference.decoder, reference.posterior_layer.networks
    return reference.encoder, reference.decoder


def hand_written(name, dtype, ds, jit, steps, warmup):
    """(b) The floor: same networks and objective in plain ops, no Keras
    trainer and no metrics; a `tf.function` runs `steps_per_execution`
    (the zoo model's default) steps per call, as `fit` does."""
    networks = _networks(name, dtype)
    variables = [v for layer in tf.nest.flatten(networks) for v in layer.trainable_variables]
    optimizer = keras.optimizers.Adam(1e-3)
    optimizer.build(variables)
    per_call = MODELS[name][0].default_steps_per_execution

    @tf.function(jit_compile=jit)
    def step(x, seed):
        with tf.GradientTape() as tape:
            loss = tf.add_n(plain_negative_elbo(networks, x, seed))
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    @tf.function
    def run(iterator, first_step):
        loss = tf.constant(0.0)
        for i in tf.range(per_call, dtype=tf.int64):
            loss = step(next(iterator), tf.stack([tf.constant(0, tf.int64), first_step + i]))
        return loss

    iterator = iter(ds)
    calls, warmup_calls = -(-steps // per_call), -(-warmup // per_call)
    for i in range(warmup_calls):
        run(iterator, tf.constant(i * per_call, tf.int64))
    start = time.perf_counter()
    for i in range(warmup_calls, warmup_calls + calls):
        loss = run(iterator, tf.constant(i * per_call, tf.int64))
    float(loss)  # wait for the last step
    return (time.perf_counter() - start) / (calls * per_call)


class KerasIoStyleVAE(keras.Model):
    """(c) keras.io's VAE pattern: a `train_step` of plain ops and three
    `Mean` trackers, trained with `model.fit`."""

    def __init__(self, networks):
        super().__init__()
        self.networks = networks
        self.trackers = [keras.metrics.Mean(name=n) for n in ("loss", "reconstruction_loss", "kl")]
        self.step_count = tf.Variable(0, dtype=tf.int64, trainable=False)

    @property
    def metrics(self):
        return self.trackers

    def train_step(self, x):
        seed = tf.stack([tf.constant(0, tf.int64), self.step_count.assign_add(1)])
        with tf.GradientTape() as tape:
            reconstruction, kl = plain_negative_elbo(self.networks, x, seed)
            loss = reconstruction + kl
        variables = self.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        for tracker, value in zip(self.trackers, (loss, reconstruction, kl)):
            tracker.update_state(value)
        return {t.name: t.result() for t in self.trackers}


def keras_io_fit(name, dtype, ds, jit, steps, warmup):
    model = KerasIoStyleVAE(_networks(name, dtype))
    model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=jit,
                  steps_per_execution=MODELS[name][0].default_steps_per_execution)
    return _time_fit(model, ds, steps, warmup)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, from {', '.join(MODELS)}")
    parser.add_argument("--jit", default="both", choices=("both", "default"),
                        help="time jit_compile on and off, or only each model's default")
    parser.add_argument("--dtypes", default="default",
                        help="comma-separated Keras dtype policies to time each model in (e.g. "
                        "float32,mixed_bfloat16); default: each model's default precision on this machine")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--manual-dir", default=None)
    args = parser.parse_args()

    started = time.perf_counter()
    ds = make_dataset(args)
    sides = {"a": zoo_fit, "b": hand_written, "c": keras_io_fit}
    rows = []
    dtypes = [None if d == "default" else d for d in args.dtypes.split(",")]
    for name, dtype in ((n, d) for n in args.models.split(",") for d in dtypes):
        model_class = MODELS[name][0]
        for jit in (True, False) if args.jit == "both" else (model_class.default_jit_compile,):
            per_step = {side: [] for side in sides}
            for round_ in range(args.rounds):
                # Rotate the order so that drift on a shared machine cancels out.
                order = list(sides)[round_ % 3:] + list(sides)[: round_ % 3]
                for side in order:
                    per_step[side].append(sides[side](name, dtype, ds, jit, args.steps, args.warmup))
            rate = {side: args.batch_size / statistics.median(t) for side, t in per_step.items()}
            policy = build(name, dtype).dtype_policy.name
            default = "yes" if jit == model_class.default_jit_compile and policy == build(name).dtype_policy.name \
                else ""
            rows.append((name, policy, str(jit), default, f"{rate['a']:,.0f}", f"{rate['b']:,.0f}",
                         f"{rate['a'] / rate['b']:.3f}", f"{rate['c']:,.0f}", f"{rate['a'] / rate['c']:.3f}"))
            print(" | ".join(rows[-1]), flush=True)

    header = ("model", "dtype", "jit_compile", "default", "(a) zoo fit samples/s", "(b) hand-written samples/s",
              "ratio (a)/(b)", "(c) keras.io-style fit samples/s", "ratio (a)/(c)")
    print()
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(f"\nbatch {args.batch_size}, {args.steps} timed steps after {args.warmup} warm-up steps, "
          f"median of {args.rounds} rounds in rotating order, {os.cpu_count()} CPU cores, "
          f"TF {tf.__version__}, Keras {keras.__version__}; wall time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
