"""The `keras-vae` command line: `train`, `sample`, `evaluate`.

    keras-vae train conv_vae --dataset mnist --epochs 5 --output-dir runs/conv_vae
    keras-vae sample runs/conv_vae/model.keras --output samples.png
    keras-vae evaluate runs/conv_vae/model.keras --dataset mnist
"""

import argparse
import json
import os
import sys
import tempfile
import time

MODELS = ("vae", "beta_vae", "conv_vae", "ae")


def _int_list(text):
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _data_args(parser):
    parser.add_argument("--dataset", default="mnist", choices=("mnist", "fashion_mnist"))
    parser.add_argument("--binarize", default="auto", choices=("auto", "dynamic", "static", "none"),
                        help="'auto': dynamic for the bernoulli likelihood, none otherwise")
    parser.add_argument("--batch-size", type=int, default=128, help="global batch size")
    parser.add_argument("--data-dir", help="TFDS data dir (default: $TFDS_DATA_DIR or TFDS's own)")
    parser.add_argument("--manual-dir",
                        help="folder with the official dataset files, for machines without internet")


def build_parser():
    parser = argparse.ArgumentParser(prog="keras-vae", description="Variational autoencoders for Keras 3.")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train a model with model.fit")
    train.add_argument("model", choices=MODELS)
    _data_args(train)
    train.add_argument("--epochs", type=int, default=5)
    train.add_argument("--train-examples", type=int, help="use only the first N training images (quick trials)")
    train.add_argument("--latent-dim", type=int, default=16)
    train.add_argument("--likelihood", default="bernoulli")
    train.add_argument("--likelihood-scale", type=float, default=0.1, help="scale of the 'gaussian' likelihood")
    train.add_argument("--num-samples", type=int, default=1, help="posterior samples per example")
    train.add_argument("--hidden-units", type=_int_list, help="MLP widths, e.g. 512,256 (vae, beta_vae, ae)")
    train.add_argument("--filters", type=_int_list, help="conv channels, e.g. 32,64 (conv_vae)")
    train.add_argument("--activation", help="hidden activation, e.g. relu or tanh")
    train.add_argument("--beta", type=float, help="KL weight (beta_vae)")
    train.add_argument("--capacity", type=float, help="KL capacity C in nats (beta_vae, Burgess et al.)")
    train.add_argument("--gamma", type=float, help="weight of |KL - C| (beta_vae with --capacity)")
    train.add_argument("--capacity-steps", type=int, help="steps over which C grows to --capacity")
    train.add_argument("--learning-rate", type=float, default=1e-3)
    train.add_argument("--jit-compile", default="auto", choices=("auto", "true", "false"))
    train.add_argument("--strategy", default="default", choices=("default", "mirrored"))
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--output-dir", default=None, help="default: runs/<model>_<dataset>")

    sample = sub.add_parser("sample", help="write a PNG grid of prior samples from a saved model")
    sample.add_argument("model_path")
    sample.add_argument("--num", type=int, default=64)
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--output", default="samples.png")

    evaluate = sub.add_parser("evaluate", help="test-set ELBO and its parts for a saved model")
    evaluate.add_argument("model_path")
    evaluate.add_argument("--split", default="test")
    evaluate.add_argument("--seed", type=int, default=0)
    _data_args(evaluate)
    return parser


def _model_kwargs(args):
    kwargs = {
        "latent_dim": args.latent_dim,
        "likelihood": args.likelihood,
        "likelihood_scale": args.likelihood_scale,
        "num_samples": args.num_samples,
        "seed": args.seed,
    }
    options = {
        "hidden_units": ("vae", "beta_vae", "ae"),
        "filters": ("conv_vae",),
        "activation": MODELS,
        "beta": ("beta_vae",),
        "capacity": ("beta_vae",),
        "gamma": ("beta_vae",),
        "capacity_steps": ("beta_vae",),
    }
    for option, models in options.items():
        value = getattr(args, option)
        if value is None:
            continue
        if args.model not in models:
            raise ValueError(
                f"`--{option.replace('_', '-')}` applies to {', '.join(models)}. Received it for: {args.model}"
            )
        kwargs[option] = value
    return kwargs


def _binarize(choice, likelihood_name):
    if choice == "auto":
        return "dynamic" if likelihood_name == "bernoulli" else None
    if choice == "none" and likelihood_name == "bernoulli":
        raise ValueError(
            "`--binarize` must be dynamic or static for the bernoulli likelihood (grey "
            "values are outside its support {0, 1}; use --likelihood continuous_bernoulli "
            "for them). Received: --binarize none"
        )
    return None if choice == "none" else choice


def _dataset(args, split, likelihood_name, training, num_examples=None):
    from keras_vae import data

    return data.load_dataset(
        args.dataset,
        split=split,
        batch_size=args.batch_size,
        binarize=_binarize(args.binarize, likelihood_name),
        shuffle=training,
        seed=args.seed,
        data_dir=args.data_dir,
        manual_dir=args.manual_dir,
        num_examples=num_examples,
    )


def _write_json(obj, path):
    fd, tmp = tempfile.mkstemp(suffix=".json", dir=os.path.dirname(os.path.abspath(path)))
    with os.fdopen(fd, "w") as f:
        json.dump(obj, f, indent=2)
    os.replace(tmp, path)


def _save_model(model, path):
    tmp = path + ".partial.keras"
    model.save(tmp)
    os.replace(tmp, path)


def train(args):
    import keras
    import numpy as np
    import tensorflow as tf

    import keras_vae
    from keras_vae import plotting

    classes = {"vae": keras_vae.VAE, "beta_vae": keras_vae.BetaVAE, "conv_vae": keras_vae.ConvVAE, "ae": keras_vae.AE}
    kwargs = _model_kwargs(args)
    out = args.output_dir or os.path.join("runs", f"{args.model}_{args.dataset}")
    os.makedirs(out, exist_ok=True)
    keras.utils.set_random_seed(args.seed)
    train_ds = _dataset(args, "train", args.likelihood, training=True, num_examples=args.train_examples)
    test_ds = _dataset(args, "test", args.likelihood, training=False)
    strategy = tf.distribute.MirroredStrategy() if args.strategy == "mirrored" else tf.distribute.get_strategy()
    with strategy.scope():
        model = classes[args.model](name=args.model, **kwargs)
        jit = {"auto": "auto", "true": True, "false": False}[args.jit_compile]
        model.compile(optimizer=keras.optimizers.Adam(args.learning_rate), jit_compile=jit)
    start = time.perf_counter()
    history = model.fit(train_ds, validation_data=test_ds, epochs=args.epochs, verbose=1 if sys.stdout.isatty() else 2)
    seconds = time.perf_counter() - start

    _save_model(model, os.path.join(out, "model.keras"))
    _write_json({"config": {k: v for k, v in vars(args).items() if k != "func"}, "seconds": seconds,
                 "history": history.history}, os.path.join(out, "history.json"))
    test_batch = next(iter(test_ds))
    plotting.plot_samples(model, os.path.join(out, "samples.png"), seed=args.seed)
    plotting.plot_reconstructions(model, test_batch, os.path.join(out, "reconstructions.png"))
    plotting.plot_interpolations(model, test_batch[:16], os.path.join(out, "interpolations.png"))
    final = {k: history.history[k][-1] for k in history.history}
    parts = ", ".join(f"{k[4:]} {final[k]:.2f}" for k in final if k.startswith("val_") and k != "val_loss")
    print(
        f"{args.model} on {args.dataset}: {args.epochs} epochs in {seconds:.1f} s, "
        f"{model.optimizer.iterations.numpy()} steps; test loss {final.get('val_loss', np.nan):.2f} ({parts}); "
        f"wrote {out}/{{model.keras,history.json,samples.png,reconstructions.png,interpolations.png}}"
    )
    return 0


def _load(path):
    import keras

    import keras_vae  # noqa: F401 - registers the classes

    if not os.path.isfile(path):
        raise ValueError(f"`model_path` must be an existing .keras file. Received: model_path={path!r}")
    return keras.models.load_model(path)


def sample(args):
    from keras_vae import plotting

    model = _load(args.model_path)
    plotting.plot_samples(model, args.output, num_samples=args.num, seed=args.seed)
    print(f"wrote {args.num} samples of {args.model_path} to {args.output}")
    return 0


def evaluate(args):
    import keras

    model = _load(args.model_path)
    keras.utils.set_random_seed(args.seed)
    ds = _dataset(args, args.split, model.likelihood_name, training=False)
    if not model.compiled:
        model.compile()
    logs = model.evaluate(ds, return_dict=True, verbose=0)
    print(json.dumps({"model": args.model_path, "dataset": args.dataset, "split": args.split,
                      **{k: round(float(v), 4) for k, v in logs.items()}}))
    return 0


def main(argv=None):
    args = build_parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from keras_vae.data import DatasetUnavailableError

    try:
        return {"train": train, "sample": sample, "evaluate": evaluate}[args.command](args)
    except (ValueError, DatasetUnavailableError) as err:
        print(f"keras-vae {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
