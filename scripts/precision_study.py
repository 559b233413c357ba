"""Paired study: does training in bfloat16 cost a conv or residual VAE any
likelihood at a fixed budget, and how much faster does it train?

For each zoo recipe asked (default `conv_vae_mnist` and `resnet_vae_mnist`),
`scripts/train_zoo.py` trains it twice on the same subset with the same seed:
once in float32 and once under Keras' `mixed_bfloat16` policy (bfloat16
compute, float32 variables; log-probabilities stay float32 in both). Each run
is scored with the protocol's importance-weighted bound on the same test
images, and the bfloat16-trained weights are scored once more in a float32
copy of the model, which separates what bfloat16 costs the training from what
it costs the scoring:

    python scripts/precision_study.py --manual-dir ../shared/data --data-dir .cache/tfds

prints, per recipe, the two NLLs, the paired difference with its standard
error (`scripts/compare_nll.py`'s), and the ratio of the training wall times,
and writes them to `<work-dir>/results.json`. A killed study resumes: each
run keeps its checkpoints and scores in `<work-dir>/<recipe>/<policy>`.
"""

import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

import compare_nll  # noqa: E402
import train_zoo  # noqa: E402
from keras_vae import files  # noqa: E402
from zoo_tools import Timings  # noqa: E402

POLICIES = ("float32", "mixed_bfloat16")


def run_dir(args, entry, policy):
    return os.path.join(args.work_dir, entry, policy)


def train_and_score(args, entry, policy):
    """Trains and scores one arm with `train_zoo.main` (resumable)."""
    work = run_dir(args, entry, policy)
    argv = [entry, "--epochs", str(args.epochs), "--train-examples", str(args.train_examples),
            "--eval-k", str(args.eval_k), "--eval-examples", str(args.eval_examples), "--seed", str(args.seed),
            "--work-dir", work, "--output-dir", os.path.join(work, "entry"), "--model-arg", f"dtype={policy}"]
    for flag in ("data_dir", "manual_dir"):
        if getattr(args, flag):
            argv += ["--" + flag.replace("_", "-"), getattr(args, flag)]
    if not os.path.exists(os.path.join(work, f"scores_k{args.eval_k}.npz")) or not os.path.exists(
            os.path.join(work, "entry", "metrics.json")):
        train_zoo.main(argv)
    return train_zoo.parse_args(argv)


def in_float32(model):
    """A float32 copy of `model` with its weights."""
    config = model.get_config()
    config["dtype"] = "float32"
    copy = type(model).from_config(config)
    copy.set_weights(model.get_weights())
    return copy


def rescore_in_float32(args, entry, zoo_args):
    """The bfloat16-trained weights scored by a float32 copy of the model,
    on the same images with the same noise; scores in `<run>/float32_scores`."""
    recipe, trained = train_zoo.RECIPES[entry], run_dir(args, entry, "mixed_bfloat16")
    work = os.path.join(trained, "float32_scores")
    os.makedirs(work, exist_ok=True)
    model = in_float32(keras.models.load_model(os.path.join(trained, "model.keras")))
    test = train_zoo.dataset(zoo_args, recipe, "test", training=False, num_examples=args.eval_examples,
                             batch_size=100)
    train_zoo.resumable_scores(model, test, args.eval_k, os.path.join(work, f"scores_k{args.eval_k}.npz"),
                               Timings(os.path.join(work, "timings.json")))
    return work


def fit_seconds(work):
    with open(os.path.join(work, "timings.json")) as f:
        return json.load(f)["fit"]


def study(args, entry):
    zoo_args = None
    for policy in POLICIES:
        zoo_args = train_and_score(args, entry, policy)
    float32_dir, bfloat16_dir = (run_dir(args, entry, p) for p in POLICIES)
    rescored_dir = rescore_in_float32(args, entry, zoo_args)
    f32 = compare_nll.load_nll(float32_dir, args.eval_k)
    f32_seconds, bf16_seconds = fit_seconds(float32_dir), fit_seconds(bfloat16_dir)
    return {
        "bfloat16_trained_and_scored": compare_nll.compare(compare_nll.load_nll(bfloat16_dir, args.eval_k), f32),
        "bfloat16_trained_float32_scored": compare_nll.compare(compare_nll.load_nll(rescored_dir, args.eval_k), f32),
        "float32_fit_seconds": f32_seconds,
        "bfloat16_fit_seconds": bf16_seconds,
        "bfloat16_speedup": f32_seconds / bf16_seconds,
    }


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", default="conv_vae_mnist,resnet_vae_mnist",
                        help="comma-separated zoo recipes (scripts/train_zoo.py's names)")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--train-examples", type=int, default=10000, help="train on the first N training images")
    parser.add_argument("--eval-k", type=int, default=500)
    parser.add_argument("--eval-examples", type=int, default=1000, help="score the first N test images")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir")
    parser.add_argument("--manual-dir")
    parser.add_argument("--work-dir", default=os.path.join("runs", "resume", "precision"))
    args = parser.parse_args(argv)
    args.entries = [e for e in args.entries.split(",") if e]
    for entry in args.entries:
        if entry not in train_zoo.RECIPES:
            parser.error(f"--entries: unknown recipe {entry!r}; expected some of {', '.join(sorted(train_zoo.RECIPES))}")
    return args


def main(argv=None):
    args = parse_args(argv)
    results = {"protocol": {k: v for k, v in vars(args).items() if k not in ("data_dir", "manual_dir")}}
    for entry in args.entries:
        result = results[entry] = study(args, entry)
        for name, r in (("trained and scored in bfloat16", result["bfloat16_trained_and_scored"]),
                        ("trained in bfloat16, scored in float32", result["bfloat16_trained_float32_scored"])):
            print(f"{entry}: {name}: NLL {r['first']:.2f} vs float32 {r['second']:.2f}, difference "
                  f"{r['difference']:+.2f} ± {r['standard_error']:.2f} nats ({r['images']} images, k={args.eval_k})")
        print(f"{entry}: training {result['float32_fit_seconds']:.0f} s in float32, "
              f"{result['bfloat16_fit_seconds']:.0f} s in bfloat16: {result['bfloat16_speedup']:.2f}x", flush=True)
        files.write_text(os.path.join(args.work_dir, "results.json"), json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
