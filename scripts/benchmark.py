"""Training speed of the TFP-based `model.fit` contract against a hand-written floor.

For `VAE` and `ConvVAE` (default architectures, Bernoulli likelihood, batch 128,
real MNIST, statically binarized so both sides see identical batches) this
trains, in one process and interleaved round by round:

  (a) the zoo model through `model.fit`;
  (b) a minimal hand-written Keras 3 loop: the same Keras networks, Adam, and
      the same ELBO written with plain TensorFlow ops (no tfd, no metrics),
      a `tf.function` step called once per batch;

with `jit_compile` on and off, and prints samples/s and the ratio (a)/(b).
Each round times `--steps` steps after a warm-up (tracing/compilation is not
timed); the reported figure is the median over `--rounds` rounds.

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
from keras_vae import data  # noqa: E402


def make_dataset(args):
    ds = data.load_dataset(
        "mnist", split="train", batch_size=args.batch_size, binarize="static", shuffle=False,
        drop_remainder=True, data_dir=args.data_dir, manual_dir=args.manual_dir,
    )
    return ds.repeat()


def time_fit(model_class, ds, jit, steps, warmup):
    keras.utils.set_random_seed(0)
    model = model_class(seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=jit)
    model.fit(ds, steps_per_epoch=warmup, epochs=1, verbose=0)
    start = time.perf_counter()
    model.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0)
    return time.perf_counter() - start


def time_hand_written(model_class, ds, jit, steps, warmup):
    """The floor: same networks and objective, plain ops, no Keras trainer."""
    keras.utils.set_random_seed(0)
    reference = model_class(seed=0)  # only to get identical networks
    encoder, decoder = reference.encoder, reference.decoder
    variables = encoder.trainable_variables + decoder.trainable_variables
    optimizer = keras.optimizers.Adam(1e-3)
    optimizer.build(variables)

    @tf.function(jit_compile=jit)
    def step(x, seed):
        with tf.GradientTape() as tape:
            mean, raw_scale = tf.split(encoder(x, training=True), 2, axis=-1)
            scale = tf.nn.softplus(raw_scale) + 1e-5
            z = mean + scale * tf.random.stateless_normal(tf.shape(mean), seed)
            logits = decoder(z, training=True)
            reconstruction = tf.reduce_mean(
                tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(labels=x, logits=logits), [1, 2, 3])
            )
            kl = tf.reduce_mean(0.5 * tf.reduce_sum(tf.square(scale) + tf.square(mean) - 1 - 2 * tf.math.log(scale), -1))
            loss = reconstruction + kl
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    iterator = iter(ds)
    for i in range(warmup):
        step(next(iterator), tf.constant([0, i], tf.int64))
    start = time.perf_counter()
    for i in range(steps):
        loss = step(next(iterator), tf.constant([1, i], tf.int64))
    float(loss)  # wait for the last step
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--models", default="VAE,ConvVAE")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--manual-dir", default=None)
    args = parser.parse_args()

    ds = make_dataset(args)
    rows = []
    for name in args.models.split(","):
        model_class = getattr(keras_vae, name)
        for jit in (True, False):
            fit_t, hand_t = [], []
            for _ in range(args.rounds):
                fit_t.append(time_fit(model_class, ds, jit, args.steps, args.warmup))
                hand_t.append(time_hand_written(model_class, ds, jit, args.steps, args.warmup))
            samples = args.steps * args.batch_size
            fit_rate, hand_rate = samples / statistics.median(fit_t), samples / statistics.median(hand_t)
            default = "yes" if jit == model_class.default_jit_compile else ""
            rows.append((name, str(jit), default, f"{fit_rate:,.0f}", f"{hand_rate:,.0f}", f"{fit_rate / hand_rate:.3f}"))
            print(" | ".join(rows[-1]), flush=True)

    header = ("model", "jit_compile", "default", "fit samples/s", "hand-written samples/s", "ratio fit/hand")
    print()
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(f"\nbatch {args.batch_size}, {args.steps} timed steps after {args.warmup} warm-up steps, "
          f"median of {args.rounds} interleaved rounds, {os.cpu_count()} CPU cores, "
          f"TF {tf.__version__}, Keras {keras.__version__}")


if __name__ == "__main__":
    main()
