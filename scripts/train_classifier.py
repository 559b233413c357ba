"""Trains the feature classifier of `keras_vae.quality` (the Fréchet distance
of samples) and writes it as `zoo/<dataset>_classifier/`: `model.keras`
(uncompiled), `classifier.json` (its sha256 and size, test accuracy, the
run's command and wall time) and a card.

    python scripts/train_classifier.py --manual-dir ../shared/data --data-dir .cache/tfds

A small conv net on grey levels in [0, 1]: two stages of two 3x3
convolutions (32 then 64 maps, the second of each with stride 2), a 128-unit
ReLU layer named "features" (what the distance uses), dropout 0.3, 10 logits.
Adam 1e-3, batch 128, seed 0; the training images shifted by up to 2 pixels
at random (a `RandomTranslation` layer active in training only).
"""

import argparse
import datetime
import json
import os
import sys
import time

import keras
import tensorflow as tf

import keras_vae
from keras_vae import data, files, quality, zoo


def build(dataset, seed):
    keras.utils.set_random_seed(seed)
    layers = keras.layers
    return keras.Sequential([
        keras.Input((28, 28, 1)),
        layers.RandomTranslation(2 / 28, 2 / 28, fill_mode="constant", seed=seed),
        layers.Conv2D(32, 3, padding="same", activation="relu"),
        layers.Conv2D(32, 3, strides=2, padding="same", activation="relu"),
        layers.Conv2D(64, 3, padding="same", activation="relu"),
        layers.Conv2D(64, 3, strides=2, padding="same", activation="relu"),
        layers.Flatten(),
        layers.Dense(128, activation="relu", name=quality.FEATURE_LAYER),
        layers.Dropout(0.3),
        layers.Dense(10, name="logits"),
    ], name=f"{dataset}_classifier")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="mnist", choices=quality.CLASSIFIERS)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir")
    parser.add_argument("--manual-dir")
    parser.add_argument("--output-dir", help="default: zoo/<dataset>_classifier")
    args = parser.parse_args(argv)
    out = args.output_dir or quality.classifier_dir(args.dataset)

    def split(name, training):
        return data.load_dataset(args.dataset, split=name, batch_size=128, with_labels=True, shuffle=training,
                                 seed=args.seed, data_dir=args.data_dir, manual_dir=args.manual_dir)

    model = build(args.dataset, args.seed)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), metrics=["accuracy"],
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    start = time.perf_counter()
    model.fit(split("train", True), epochs=args.epochs, verbose=2)
    fit_seconds = time.perf_counter() - start
    _, accuracy = model.evaluate(split("test", False), verbose=0)

    bare = type(model).from_config(model.get_config())  # uncompiled: no optimizer state in the shipped file
    bare.set_weights(model.get_weights())
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, quality.CLASSIFIER_FILE)
    files.save_model(bare, path)
    record = {
        "command": "python " + " ".join(sys.argv),
        "date": datetime.date.today().isoformat(),
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__, "keras_vae": keras_vae.__version__},
        "dataset": args.dataset,
        "epochs": args.epochs,
        "seed": args.seed,
        "test_accuracy": float(accuracy),
        "parameters": int(bare.count_params()),
        "fit_seconds": fit_seconds,
        "files": {quality.CLASSIFIER_FILE: zoo.file_record(path)},
    }
    files.write_text(os.path.join(out, quality.RECORD_FILE), json.dumps(record, indent=2) + "\n")
    info = record["files"][quality.CLASSIFIER_FILE]
    files.write_text(os.path.join(out, "README.md"), f"""# {args.dataset}_classifier: the features of the sample-quality distance

The classifier whose 128 "features" activations `keras_vae.quality` compares
generated and real images in (a Fréchet distance, not FID: no Inception
weights here). {record["parameters"]:,} parameters. {__doc__.split(chr(10) + chr(10))[2].strip()}

| measure | value |
|---|---|
| test accuracy, 10,000 {args.dataset} test images | **{accuracy:.4f}** |

Trained {args.epochs} epochs on the 60,000 training images (grey levels, shuffled each epoch) in
{fit_seconds / 60:.1f} min on a 2-core CPU machine without GPU (shared with other work), on
{record['date']} with TensorFlow {tf.__version__}, Keras {keras.__version__}. Command (from the
repository root):

    {record['command']}

## Files

- `{quality.CLASSIFIER_FILE}`: {info['bytes']} bytes, sha256 `{info['sha256']}`
  (checked by `keras_vae.quality.classifier` before it loads)
""")
    print(json.dumps({"test_accuracy": accuracy, "fit_seconds": round(fit_seconds, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
