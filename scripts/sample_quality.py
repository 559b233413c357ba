"""Scores the samples of the zoo entries whose dataset has a feature
classifier (`keras_vae.quality.CLASSIFIERS`): the Fréchet distance
(`keras_vae.quality`, that dataset's classifier's features; not FID)
between 10,000 samples (seeds 0, 1, ... per 1,000) and the dataset's 10,000
test images as grey levels; for the entries in `--gmm` also with a
10-component Gaussian mixture fitted by `fit_sampler` to the codes of the
60,000 training images (binarized with seed 0 for a Bernoulli likelihood).
Real training images (the first 10,000, grey) give the value real images
get, per dataset.

Writes `sample_quality.json` into each entry, its card's "Sample quality"
section, and prints the README's table.

    python scripts/sample_quality.py --manual-dir ../shared/data --data-dir .cache/tfds
    python scripts/sample_quality.py conv_vae_fashion_mnist --manual-dir ../shared/data --data-dir .cache/tfds
"""

import argparse
import datetime
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from keras_vae import data, files, quality, zoo  # noqa: E402
from zoo_tools import QUALITY_HEADING, quality_markdown, split_images  # noqa: E402

NUM_SAMPLES = 10000
DATASET_TITLES = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST"}
COMPONENTS = 10


def grey(dataset, split, count, args):
    ds = data.load_dataset(dataset, split=split, batch_size=count, num_examples=count, shuffle=False,
                           data_dir=args.data_dir, manual_dir=args.manual_dir)
    return next(iter(ds)).numpy()


def entry_dataset(name):
    with open(os.path.join(zoo.entry_dir(name), "metrics.json")) as f:
        return json.load(f).get("dataset") or "mnist"


def scored_entries():
    """The zoo's entries whose dataset has a feature classifier."""
    return [name for name in zoo.names() if entry_dataset(name) in quality.CLASSIFIERS]


def prior_label(model):
    if hasattr(model, "pixelcnn"):
        return "its PixelCNN prior over code maps (temperature 1)"
    if not model.defines_density:
        return "N(0, I) noise (an AE has no prior)"
    return "its prior"


def add_to_card(folder):
    """Puts `quality_markdown(folder)` into the card: in place of its
    section when there is one, else before "## Protocol"."""
    path = os.path.join(folder, "README.md")
    with open(path) as f:
        card = f.read()
    section = quality_markdown(folder)
    if QUALITY_HEADING in card:
        head, rest = card.split(QUALITY_HEADING, 1)
        tail = rest[rest.index("\n## ") + 1:]
    elif "## Protocol" in card:
        head, tail = card.split("## Protocol", 1)
        tail = "## Protocol" + tail
    else:
        raise ValueError(f"{path} has neither a {QUALITY_HEADING!r} nor a '## Protocol' section")
    files.write_text(path, head + section + tail)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("entries", nargs="*", help="default: every MNIST entry")
    parser.add_argument("--gmm", nargs="*", default=["ae_mnist", "vae_mnist"],
                        help="entries also scored with a fitted Gaussian mixture")
    parser.add_argument("--data-dir")
    parser.add_argument("--manual-dir")
    args = parser.parse_args(argv)
    datasets = {name: entry_dataset(name) for name in args.entries or scored_entries()}
    for name, dataset in datasets.items():
        if dataset not in quality.CLASSIFIERS:
            raise SystemExit(f"{name}: its dataset {dataset!r} has no feature classifier "
                             f"(those of {quality.CLASSIFIERS})")
    start = time.perf_counter()
    references, results = {}, {}
    for name, dataset in datasets.items():
        if dataset not in references:
            test_features = quality.features(grey(dataset, "test", NUM_SAMPLES, args), dataset)
            real = quality.frechet_distance(quality.features(grey(dataset, "train", NUM_SAMPLES, args), dataset),
                                            test_features)
            references[dataset] = test_features, real
            print(f"{dataset}, real training images: {real:.2f}", flush=True)
        test_features, _ = references[dataset]
        model = zoo.load(name)

        def score():
            generated = quality.generate(model, NUM_SAMPLES, seed=0)
            return quality.frechet_distance(quality.features(generated, dataset), test_features)

        rows = [{"sampler": prior_label(model), "frechet_distance": score()}]
        if name in args.gmm:
            train_x, _ = split_images(dataset, model, "train", args.data_dir, args.manual_dir, count=60000)
            history = model.fit_sampler(train_x, components=COMPONENTS)
            rows.append({"sampler": f"a Gaussian mixture ({COMPONENTS} components, full covariances) fitted by "
                         f"EM to the 60,000 training codes ({len(history)} iterations)",
                         "frechet_distance": score()})
        results[name] = rows
        print(name, [round(r["frechet_distance"], 2) for r in rows], flush=True)
    wall = time.perf_counter() - start
    for name, rows in results.items():
        dataset = datasets[name]
        title = DATASET_TITLES[dataset]
        record = {
            "command": "python " + " ".join(sys.argv), "date": datetime.date.today().isoformat(),
            "dataset": dataset,
            "classifier": f"{title} classifier (test accuracy {quality.classifier_record(dataset)['test_accuracy']:.4f})",
            "reference": "10,000 test images (grey levels)", "num_samples": NUM_SAMPLES,
            "real_images": references[dataset][1], "wall_seconds": wall, "rows": rows,
        }
        folder = zoo.entry_dir(name)
        files.write_text(os.path.join(folder, "sample_quality.json"), json.dumps(record, indent=2) + "\n")
        add_to_card(folder)
    for dataset, (_, real) in references.items():
        title = DATASET_TITLES[dataset]
        print(f"\n| entry | samples from | Fréchet distance ({title} classifier) |\n|---|---|---|")
        print(f"| real training images | (10,000 of them) | {real:.2f} |")
        for name, rows in results.items():
            for r in rows if datasets[name] == dataset else ():
                print(f"| `{name}` | {r['sampler']} | {r['frechet_distance']:.2f} |")
    print(f"\nwall time {wall / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
