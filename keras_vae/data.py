"""MNIST and Fashion-MNIST input pipelines built on tensorflow-datasets.

`load_dataset` returns a batched `tf.data.Dataset` of float32 images of shape
`[batch, 28, 28, 1]`, either grey values in `[0, 1]` or binarized:

* `binarize="dynamic"`: a fresh Bernoulli draw, with the grey value as the
  probability of a 1, every time an image is used (so every epoch differs).
* `binarize="static"`: one fixed Bernoulli draw per image, identical in every
  epoch and in every pipeline built with the same seed.

Data is prepared by TFDS in `data_dir` on first use. Without internet access,
point `manual_dir` (or the `KERAS_VAE_MANUAL_DIR` environment variable) to a
folder holding the dataset's four official `.gz` release files; TFDS checks
their sha256 before using them.
"""

import os
import socket
import urllib.parse
import urllib.request

try:
    import fcntl
except ImportError:  # Windows: no lock, prepare from one process first
    fcntl = None

import tensorflow as tf
import tensorflow_datasets as tfds

from keras_vae import distribute, validation

DATASETS = ("mnist", "fashion_mnist")
BINARIZATIONS = (None, "dynamic", "static")

_CONNECT_TIMEOUT = 3.0  # Seconds allowed to reach a download host.


class DatasetUnavailableError(RuntimeError):
    """The dataset is not prepared and cannot be downloaded or built."""


def _resolve_manual_dir(name, manual_dir):
    """Accepts the dataset's folder itself or a parent holding `<name>/`."""
    manual_dir = manual_dir or os.environ.get("KERAS_VAE_MANUAL_DIR")
    if not manual_dir:
        return None
    manual_dir = os.path.expanduser(os.fspath(manual_dir))
    nested = os.path.join(manual_dir, name)
    return nested if os.path.isdir(nested) else manual_dir


def _first_unreachable_host(urls):
    """Returns an error line for the first download host that cannot be reached.

    TFDS retries a failed download for minutes; this fails in seconds instead.
    When a proxy is configured for a URL, the proxy is checked instead.
    """
    proxies = urllib.request.getproxies()
    for url in urls:
        parts = urllib.parse.urlsplit(url)
        proxy = proxies.get(parts.scheme)
        if proxy and not urllib.request.proxy_bypass(parts.hostname):
            parts = urllib.parse.urlsplit(proxy)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            socket.create_connection((parts.hostname, port), _CONNECT_TIMEOUT).close()
        except OSError as error:
            return f"cannot reach {parts.hostname}:{port} ({error})"
    return None


def _one_line(error):
    text = str(error).strip()
    first = text.splitlines()[0] if text else ""
    return f"{type(error).__name__}: {first[:300]}"


def _unavailable(name, data_dir, reason):
    return DatasetUnavailableError(
        f"Dataset {name!r} is not prepared in data_dir={data_dir!r} and could "
        f"not be downloaded: {reason}. Set `manual_dir=` (or the "
        "KERAS_VAE_MANUAL_DIR environment variable, or the CLI option "
        "`--manual-dir`) to the folder holding the official release files, or "
        "set `data_dir=` (or TFDS_DATA_DIR) to an already-prepared TFDS "
        "directory."
    )


def prepare(name, data_dir=None, manual_dir=None):
    """Makes sure TFDS has `name` prepared in `data_dir`; returns the builder.

    Args:
        name: One of `DATASETS`.
        data_dir: TFDS data directory. Defaults to the `TFDS_DATA_DIR`
            environment variable, then to TFDS's default directory.
        manual_dir: Folder holding the dataset's four official `.gz` files
            (or a parent folder holding a `<name>/` subfolder with them).
            Defaults to the `KERAS_VAE_MANUAL_DIR` environment variable. If
            unset, TFDS downloads the files, which needs internet access.

    Returns:
        The prepared `tfds.core.DatasetBuilder`.

    Raises:
        DatasetUnavailableError: The dataset is not prepared and cannot be
            prepared (missing files, no network, checksum mismatch...).
    """
    validation.choice("name", name, DATASETS)
    data_dir = data_dir or os.environ.get("TFDS_DATA_DIR") or None
    builder = tfds.builder(name, data_dir=data_dir)
    if builder.is_prepared():
        return builder
    # Several processes (the workers of one cluster) may prepare the same
    # data_dir at once; TFDS's own writes would collide. One at a time.
    root = os.fspath(builder.data_dir_root)
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, f".keras_vae-prepare-{name}.lock"), "w") as lock:
        if fcntl is not None:
            fcntl.flock(lock, fcntl.LOCK_EX)
        builder = tfds.builder(name, data_dir=data_dir)
        if builder.is_prepared():  # prepared by another process meanwhile
            return builder
        return _prepare(builder, name, root, manual_dir)


def _prepare(builder, name, root, manual_dir):
    manual_dir = _resolve_manual_dir(name, manual_dir)
    if manual_dir is None:
        reason = _first_unreachable_host(builder.url_infos)
        if reason:
            raise _unavailable(name, root, reason)
        try:
            builder.download_and_prepare()
        except Exception as error:  # Any failure: no raw download trace.
            raise _unavailable(name, root, _one_line(error)) from None
        return builder
    expected = sorted(info.filename for info in builder.url_infos.values())
    missing = [f for f in expected if not os.path.isfile(os.path.join(manual_dir, f))]
    if missing:
        raise DatasetUnavailableError(
            f"`manual_dir` for dataset {name!r} must be a folder holding the "
            f"official files {expected}. Missing from manual_dir={manual_dir!r}: "
            f"{missing}"
        )
    config = tfds.download.DownloadConfig(
        manual_dir=manual_dir,
        # One extract dir per dataset: MNIST and Fashion-MNIST share file
        # names, and a shared extract dir silently reuses the wrong files.
        extract_dir=os.path.join(root, "downloads", f"extracted_{name}"),
    )
    try:
        builder.download_and_prepare(download_config=config)
    except Exception as error:
        raise DatasetUnavailableError(
            f"Could not prepare dataset {name!r} in data_dir={root!r} from "
            f"manual_dir={manual_dir!r}: {_one_line(error)}"
        ) from None
    return builder


def load_dataset(name, split="train", batch_size=128, binarize=None,
                 shuffle=None, seed=None, data_dir=None, manual_dir=None,
                 drop_remainder=None, num_examples=None, with_labels=False):
    """Builds a batched, prefetched `tf.data.Dataset` of images.

    Args:
        name: One of `DATASETS` ("mnist", "fashion_mnist").
        split: Any TFDS split string: "train", "test", "train[:1000]"...
        batch_size: GLOBAL batch size. Under a `tf.distribute` strategy,
            Keras `fit` splits each batch across the replicas, so pass the
            total over all replicas (per-replica size * number of replicas).
        binarize: `None` (grey values in `[0, 1]`), "dynamic" (fresh
            Bernoulli draw each time an image is used) or "static" (one fixed
            draw per image, keyed by its index in `split`).
        shuffle: Shuffle the whole split (or `num_examples`) each epoch.
            Defaults to `True` for splits starting with "train", else `False`.
        seed: Makes shuffling and dynamic binarization reproducible: two
            pipelines built with the same seed yield the same sequence of
            epochs, while each epoch still differs from the previous one.
            Static binarization uses seed 0 when `seed` is `None`. Required
            for training on several workers (`TF_CONFIG`): each worker builds
            the whole pipeline and keeps its share of every global batch
            (`AutoShardPolicy.DATA`), so all must shuffle alike.
        data_dir: TFDS data directory, see `prepare`.
        manual_dir: Folder with the official release files, see `prepare`.
        drop_remainder: Drop the last incomplete batch. Defaults to `shuffle`
            (drop when training, keep every example when evaluating).
        num_examples: Use only the first `num_examples` examples of `split`.
        with_labels: Yield `(images, labels)` with int64 labels instead of
            images only.

    Returns:
        A `tf.data.Dataset` of float32 images `[batch, 28, 28, 1]`.
    """
    validation.choice("name", name, DATASETS)
    validation.choice("binarize", binarize, BINARIZATIONS)
    if not isinstance(split, str):
        raise ValueError(f"`split` must be a TFDS split string such as 'train' or 'test[:1000]'. "
                         f"Received: split={split!r}")
    validation.positive_int("batch_size", batch_size)
    if seed is not None:
        validation.seed("seed", seed)
    if num_examples is not None:
        validation.positive_int("num_examples", num_examples)
    if shuffle is None:
        shuffle = split.startswith("train")
    if seed is None and (shuffle or binarize == "dynamic") and distribute.num_workers() > 1:
        raise ValueError(
            "`seed` must be set when TF_CONFIG names several workers: every worker builds the "
            "pipeline and keeps its own share of each batch, which needs the same shuffling "
            "and binarization on all of them. Received: seed=None"
        )
    builder = prepare(name, data_dir=data_dir, manual_dir=manual_dir)
    if drop_remainder is None:
        drop_remainder = bool(shuffle)

    # No TFDS auto-cache: the pipeline caches the decoded images below, and
    # `num_examples` would read TFDS's cache only partly (a TensorFlow warning).
    ds = builder.as_dataset(split=split, shuffle_files=False, read_config=tfds.ReadConfig(try_autocache=False))
    size = builder.info.splits[split].num_examples
    if num_examples is not None:
        ds = ds.take(num_examples)
        size = min(size, num_examples)
    if drop_remainder and size < batch_size:
        raise ValueError(
            f"`batch_size` must be at most the number of examples when incomplete batches are dropped "
            f"(the default when shuffling), or the dataset is empty: there are {size} (split {split!r}"
            f"{'' if num_examples is None else f', num_examples={num_examples}'}). Received: batch_size={batch_size}"
        )
    ds = ds.map(
        lambda ex: (tf.cast(ex["image"], tf.float32) / 255.0, ex["label"]),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    if binarize == "static":
        static_seed = tf.constant(0 if seed is None else seed, tf.int64)

        def static_draw(index, example):
            image, label = example
            noise = tf.random.stateless_uniform(
                tf.shape(image), seed=tf.stack([static_seed, index])
            )
            return tf.cast(noise < image, tf.float32), label

        ds = ds.enumerate().map(static_draw, num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.cache()
    if shuffle:
        ds = ds.shuffle(max(size, 1), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    if binarize == "dynamic":
        # One stateless seed pair per batch, from a random stream that is
        # reproducible given `seed` but changes with every iteration (epoch).
        seeds = tf.data.Dataset.random(
            seed=seed, rerandomize_each_iteration=True
        ).batch(2)

        def dynamic_draw(batch, batch_seed):
            image, label = batch
            noise = tf.random.stateless_uniform(tf.shape(image), seed=batch_seed)
            return tf.cast(noise < image, tf.float32), label

        ds = tf.data.Dataset.zip(ds, seeds).map(
            dynamic_draw, num_parallel_calls=tf.data.AUTOTUNE
        )
    if not with_labels:
        ds = ds.map(lambda image, label: image)
    # Under several workers every worker builds this same pipeline (same
    # seed, same order) and keeps its own share of each global batch: TFDS
    # stores MNIST in one file per split, so sharding by file cannot apply.
    return distribute.shardable(ds).prefetch(tf.data.AUTOTUNE)
