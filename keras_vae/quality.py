"""A sample-quality number: the Fréchet distance between generated and real
images in the feature space of a small classifier the package trains and
ships (`zoo/<dataset>_classifier/`, sha256-checked; `scripts/train_classifier.py`).

This is *not* FID: FID uses Inception-v3 features, whose weights these
machines cannot download, and its values are not comparable with these. The
recipe is FID's (Heusel et al. 2017); the features are those of a classifier
of the dataset itself: the 128 activations of its last hidden layer. Lower
is better; 0 for identical feature statistics. The distance between real
training and test images (`scripts/sample_quality.py` reports it) is the
value real images get on samples of that size.

    fd = keras_vae.quality.sample_frechet_distance(model, test_images)   # 10,000 samples, seed 0
"""

import json
import os

import numpy as np

from keras_vae import validation, zoo

#: Datasets with a shipped feature classifier.
CLASSIFIERS = ("mnist", "fashion_mnist")
CLASSIFIER_FILE, RECORD_FILE = "model.keras", "classifier.json"
#: Name of the classifier's feature layer.
FEATURE_LAYER = "features"

_loaded = {}


def classifier_dir(dataset):
    return os.path.join(zoo.ROOT, f"{dataset}_classifier")


def classifier_record(dataset="mnist"):
    """`classifier.json` of the shipped classifier of `dataset`: its files'
    sha256, test accuracy and how it was trained."""
    dataset = validation.choice("dataset", dataset, CLASSIFIERS)
    with open(os.path.join(classifier_dir(dataset), RECORD_FILE)) as f:
        return json.load(f)


def classifier(dataset="mnist"):
    """The shipped classifier of `dataset` (a `keras.Model` on grey levels
    in [0, 1], `[N, 28, 28, 1]` -> 10 logits), its file checked by sha256."""
    import keras

    record = classifier_record(dataset)
    if dataset not in _loaded:
        path = os.path.join(classifier_dir(dataset), CLASSIFIER_FILE)
        zoo.check_file(f"the {dataset} feature classifier", path, record["files"][CLASSIFIER_FILE])
        _loaded[dataset] = keras.models.load_model(path)
    return _loaded[dataset]


def features(images, dataset="mnist", batch_size=1000):
    """`[N, 128]` float64: the feature-layer activations of `dataset`'s
    classifier for `images`, grey levels in [0, 1] of shape `[N, 28, 28, 1]`."""
    import keras

    dataset = validation.choice("dataset", dataset, CLASSIFIERS)
    images = np.asarray(images, "float32")
    if images.ndim != 4 or images.shape[1:] != (28, 28, 1):
        raise ValueError(f"`images` must have shape (N, 28, 28, 1). Received: images.shape={images.shape}")
    if images.size and (images.min() < 0 or images.max() > 1):
        raise ValueError("`images` must be grey levels in [0, 1] (8-bit values divided by 255). "
                         f"Received: values in [{images.min():g}, {images.max():g}]")
    key = (dataset, FEATURE_LAYER)
    if key not in _loaded:  # built once: every call would otherwise make a new Keras model
        net = classifier(dataset)
        _loaded[key] = keras.Model(net.inputs, net.get_layer(FEATURE_LAYER).output)
    extractor = _loaded[key]
    return np.asarray(extractor.predict(images, batch_size=batch_size, verbose=0), "float64")


def _sqrt_psd(matrix):
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet_distance(features_a, features_b):
    """The Fréchet distance between Gaussians fitted to two feature sets
    `[N, D]`, `[M, D]`: ||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)).
    The trace of the square root is computed as that of the symmetric
    `(S_a^(1/2) S_b S_a^(1/2))^(1/2)` (the same eigenvalues), so it stays real."""
    a, b = np.asarray(features_a, "float64"), np.asarray(features_b, "float64")
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(len(a), len(b)) < 2:
        raise ValueError("`features_a` and `features_b` must be [N, D] arrays with the same D and N >= 2. "
                         f"Received: shapes {a.shape} and {b.shape}")
    mean_a, mean_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root_a = _sqrt_psd(cov_a)
    cross = np.sum(np.sqrt(np.clip(np.linalg.eigvalsh(root_a @ cov_b @ root_a), 0, None)))
    return float(np.sum((mean_a - mean_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2 * cross)


def generate(model, num_samples=10000, seed=0, batch_size=1000, **sample_kwargs):
    """`num_samples` images from `model.sample` as grey levels in [0, 1]
    (likelihood means divided by the 8-bit scale where there is one), drawn
    `batch_size` at a time with the seeds `seed`, `seed + 1`, ...;
    `sample_kwargs` go to `sample` (e.g. `temperature` for `VQVAE`)."""
    num_samples = validation.positive_int("num_samples", num_samples)
    batch_size = validation.positive_int("batch_size", batch_size)
    seed = validation.seed("seed", seed)
    scale = model.likelihood.value_scale
    images = [np.asarray(model.sample(min(batch_size, num_samples - start), seed=seed + i, **sample_kwargs),
                         "float32") / scale
              for i, start in enumerate(range(0, num_samples, batch_size))]
    return np.clip(np.concatenate(images), 0.0, 1.0)


def sample_frechet_distance(model, reference_images, num_samples=10000, seed=0, dataset="mnist", **sample_kwargs):
    """The Fréchet distance between `generate(model, num_samples, seed)` and
    `reference_images` (grey levels, usually the 10,000 test images) in the
    features of `dataset`'s classifier."""
    return frechet_distance(features(generate(model, num_samples, seed, **sample_kwargs), dataset),
                            features(reference_images, dataset))


__all__ = ["classifier", "classifier_record", "features", "frechet_distance", "generate", "sample_frechet_distance"]
