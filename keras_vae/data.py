"""Image input pipelines: any TFDS image dataset, a folder of image files, or arrays.

Three sources give the same batched, prefetched `tf.data.Dataset` of float32
images `[batch, H, W, C]`:

* `load_dataset(name)`: a TFDS dataset with an image feature (`mnist`,
  `fashion_mnist`, `cifar10`, `celeb_a`, `svhn_cropped`, `dsprites`, ...),
  prepared by TFDS in `data_dir` on first use. Without internet access, MNIST
  and Fashion-MNIST are prepared from their four official `.gz` release files
  in `manual_dir` (or the `KERAS_VAE_MANUAL_DIR` environment variable); TFDS
  checks their sha256 before using them.
* `from_directory(path)`: the PNG, JPEG, BMP and GIF files under a folder
  (recursively), decoded by `tf.io.decode_image`.
* `from_arrays(images)`: a numpy array, or a `.npy` / `.npz` file.

Each takes `crop` (a centre crop, applied first) and `image_size` (a resize,
with antialiasing), and gives its pixels in one of the value conventions the
likelihoods model (`keras_vae.likelihoods`, `Likelihood.values`):

* `values="unit"`: grey values in `[0, 1]`, optionally binarized:
  `binarize="dynamic"` draws a fresh Bernoulli sample, with the grey value as
  the probability of a 1, every time an image is used (so every epoch
  differs); `binarize="static"` one fixed draw per image, identical in every
  epoch and in every pipeline built with the same seed.
* `values="8bit"`: the integers 0..255 (as float32), for `discretized_logistic`.
* `values="dequantized"`: the 8-bit integers plus uniform noise in `[0, 1)`
  drawn afresh every time an image is used, for `dequantized_gaussian`.

All sources follow the same rules: the batch size is the global one under a
`tf.distribute` strategy; shuffling and noise are reproducible from `seed`;
incomplete batches are dropped when training; under several workers every
worker builds the same pipeline and keeps its share of each batch.
"""

import hashlib
import os
import socket
import urllib.parse
import urllib.request

try:
    import fcntl
except ImportError:  # Windows: no lock, prepare from one process first
    fcntl = None

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from keras_vae import distribute, validation

#: The datasets prepared offline from their release files (`manual_dir`);
#: `load_dataset` takes any other TFDS image dataset by name too.
DATASETS = ("mnist", "fashion_mnist")
BINARIZATIONS = (None, "dynamic", "static")
#: Pixel-value conventions, see the module doc.
VALUES = ("unit", "8bit", "dequantized")
#: File types `from_directory` reads (what `tf.io.decode_image` decodes).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")

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
        name: A TFDS dataset name; `DATASETS` can be prepared offline from
            `manual_dir`.
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
    data_dir = data_dir or os.environ.get("TFDS_DATA_DIR") or None
    builder = _builder(name, data_dir)
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


def _builder(name, data_dir):
    if not isinstance(name, str) or not name:
        raise ValueError(f"`name` must be a TFDS dataset name such as 'mnist' or 'cifar10'. Received: name={name!r}")
    try:
        return tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        raise ValueError(f"`name` must be a TFDS dataset name (see `tfds.list_builders()`); no dataset is called "
                         f"{name!r}. Received: name={name!r}") from None


def _prepare(builder, name, root, manual_dir):
    manual_dir = _resolve_manual_dir(name, manual_dir)
    if manual_dir is not None and name not in DATASETS:
        config = tfds.download.DownloadConfig(manual_dir=manual_dir)
        try:
            builder.download_and_prepare(download_config=config)
        except Exception as error:
            raise DatasetUnavailableError(
                f"Could not prepare dataset {name!r} in data_dir={root!r} from manual_dir={manual_dir!r}: "
                f"{_one_line(error)}") from None
        return builder
    if manual_dir is None:
        reason = _first_unreachable_host(builder.url_infos or {})
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


#: TFDS datasets whose uint8 images hold 0 and 1 rather than 0..255 (dSprites):
#: `load_dataset` scales them to 0 and 255, so every value convention holds.
BINARY_UINT8 = ("dsprites",)


def load_dataset(name, split="train", batch_size=128, binarize=None,
                 shuffle=None, seed=None, data_dir=None, manual_dir=None,
                 drop_remainder=None, num_examples=None, with_labels=False,
                 values="unit", image_size=None, crop=None):
    """Builds a batched, prefetched `tf.data.Dataset` of a TFDS image dataset.

    Args:
        name: A TFDS dataset with an image feature ("mnist", "fashion_mnist",
            "cifar10", "celeb_a", ...). The feature called "image" is used,
            else the first image feature.
        split: Any TFDS split string: "train", "test", "train[:1000]"...
        batch_size: GLOBAL batch size. Under a `tf.distribute` strategy,
            Keras `fit` splits each batch across the replicas, so pass the
            total over all replicas (per-replica size * number of replicas).
        binarize: `None`, "dynamic" (fresh Bernoulli draw each time an image
            is used) or "static" (one fixed draw per image, keyed by its
            index in `split`); with `values="unit"` only.
        shuffle: Shuffle the whole split (or `num_examples`) each epoch.
            Defaults to `True` for splits starting with "train", else `False`.
        seed: Makes shuffling and the noise (dynamic binarization,
            dequantization) reproducible: two pipelines built with the same
            seed yield the same sequence of epochs, while each epoch still
            differs from the previous one. Static binarization uses seed 0
            when `seed` is `None`. Required for training on several workers
            (`TF_CONFIG`): each worker builds the whole pipeline and keeps its
            share of every global batch (`AutoShardPolicy.DATA`), so all must
            shuffle alike.
        data_dir: TFDS data directory, see `prepare`.
        manual_dir: Folder with the official release files, see `prepare`.
        drop_remainder: Drop the last incomplete batch. Defaults to `shuffle`
            (drop when training, keep every example when evaluating).
        num_examples: Use only the first `num_examples` examples of `split`.
        with_labels: Yield `(images, labels)` with int64 labels (the
            dataset's "label" feature) instead of images only.
        values: "unit", "8bit" or "dequantized" (see the module doc).
        image_size: Resize every image to this `(height, width)` (an int for
            a square), bilinear with antialiasing. Default: as stored.
        crop: Centre-crop every image to this `(height, width)` (an int for
            a square) before resizing, e.g. CelebA's usual `crop=148,
            image_size=64`.

    Returns:
        A `tf.data.Dataset` of float32 images `[batch, H, W, C]` (MNIST:
        `[batch, 28, 28, 1]`).
    """
    options = _options(binarize, values, batch_size, seed, num_examples, image_size, crop)
    if not isinstance(split, str):
        raise ValueError(f"`split` must be a TFDS split string such as 'train' or 'test[:1000]'. "
                         f"Received: split={split!r}")
    if shuffle is None:
        shuffle = split.startswith("train")
    _check_worker_seed(seed, shuffle, binarize, values)
    builder = _builder(name, data_dir or os.environ.get("TFDS_DATA_DIR") or None)
    image_key, label_key = _feature_keys(builder, name, with_labels)  # before any download
    if not builder.is_prepared():
        builder = prepare(name, data_dir=data_dir, manual_dir=manual_dir)
    # No TFDS auto-cache: the pipeline caches the decoded images below, and
    # `num_examples` would read TFDS's cache only partly (a TensorFlow warning).
    ds = builder.as_dataset(split=split, shuffle_files=False, read_config=tfds.ReadConfig(try_autocache=False))
    try:
        size = builder.info.splits[split].num_examples
    except (KeyError, ValueError):  # split sizes unknown to the builder's metadata: count
        size = int(ds.reduce(0, lambda n, _: n + 1))
    scale = 255 if name.split("/")[0].split(":")[0] in BINARY_UINT8 else 1

    def pair(ex):
        image = ex[image_key] * tf.constant(scale, tf.uint8) if scale != 1 else ex[image_key]
        return image, ex[label_key] if label_key else tf.constant(-1, tf.int64)

    ds = ds.map(pair, num_parallel_calls=tf.data.AUTOTUNE)
    stored = tuple(builder.info.features[image_key].shape)
    where = f"split {split!r}"
    return _pipeline(ds, size, stored, where, shuffle=shuffle, drop_remainder=drop_remainder,
                     with_labels=with_labels, **options)


def from_directory(path, split=None, validation_split=0.1, batch_size=128, binarize=None, shuffle=None, seed=None,
                   drop_remainder=None, num_examples=None, with_labels=False, values="unit", image_size=None,
                   crop=None, channels=None):
    """Builds the same pipeline as `load_dataset` from a folder of image files.

    Every PNG, JPEG, BMP and GIF file (the first frame) under `path`, in
    sub-folders too, sorted by path, decoded by `tf.io.decode_image`. Every
    file's header is read before the pipeline is built (with Pillow), so an
    unreadable file, images of different sizes without `image_size`, or a
    `crop` larger than an image fail at once with the file named.

    Args:
        path: The folder.
        split: `None` (every file), "train" or "test": a held-out split of
            about `validation_split` of the files, chosen by a hash of each
            file's path relative to `path` (stable when files are added, the
            same for every seed).
        validation_split: The share of files in the "test" split, in [0, 1).
        shuffle: Defaults to `True` for `split="train"` only: `split=None`
            yields every file in path order, as an evaluation split does, so
            pass `shuffle=True` to train on all of them.
        channels: 1 (grey) or 3 (colour; grey files are repeated). Default:
            1 when every file is grey, else 3.
        with_labels: Yield `(images, labels)`, the label of a file the index
            of its first-level sub-folder among the sorted sub-folder names
            (the layout `keras.utils.image_dataset_from_directory` infers
            labels from).
        Others: as `load_dataset`.
    """
    options = _options(binarize, values, batch_size, seed, num_examples, image_size, crop)
    split = validation.choice("split", split, (None, "train", "test"))
    validation_split = _validation_split(validation_split, split)
    if channels is not None:
        validation.choice("channels", channels, (1, 3))
    if shuffle is None:
        shuffle = split == "train"
    _check_worker_seed(seed, shuffle, binarize, values)
    root = os.path.expanduser(os.fspath(path))
    if not os.path.isdir(root):
        raise ValueError(f"`path` must be an existing folder of image files. Received: path={path!r}")
    files = sorted(
        os.path.join(folder, f) for folder, _, names in os.walk(root, followlinks=True) for f in names
        if f.lower().endswith(IMAGE_EXTENSIONS)
    )
    if not files:
        raise ValueError(f"`path` must hold image files ({', '.join(IMAGE_EXTENSIONS)}, in sub-folders too). "
                         f"Received: path={path!r}, with none")
    if split is not None:
        held_out = [_hash_fraction(os.path.relpath(f, root)) < validation_split for f in files]
        files = [f for f, test in zip(files, held_out) if test == (split == "test")]
        if not files:
            raise ValueError(f"`validation_split` leaves the {split!r} split of {path!r} empty. "
                             f"Received: validation_split={validation_split!r}")
    labels = _folder_labels(root, files) if with_labels else [-1] * len(files)
    sizes, grey = _headers(files, image_size is None, path)
    crop = options["crop"]
    too_small = [(h, w, f) for (h, w), f in sizes.items() if crop is not None and (crop[0] > h or crop[1] > w)]
    if too_small:  # checked here: the pipeline knows no size when the files differ
        height, width, file = too_small[0]
        raise ValueError(f"`crop` must fit in every image; {os.path.relpath(file, root)} in {path!r} is "
                         f"{height}x{width}. Received: crop={crop}")
    channels = channels or (1 if grey else 3)
    stored = (*next(iter(sizes)), channels) if len(sizes) == 1 else (None, None, channels)

    def decode(file, label):
        # Three channels for every format (TF decodes BMP and GIF to no fewer);
        # grey files then keep one of their equal channels, colour files asked
        # for one channel become luminance.
        image = tf.io.decode_image(tf.io.read_file(file), channels=3, expand_animations=False)
        if channels == 1:
            image = image[..., :1] if grey else tf.cast(tf.round(tf.image.rgb_to_grayscale(
                tf.cast(image, tf.float32))), tf.uint8)
        image.set_shape(stored)
        return image, label

    ds = tf.data.Dataset.from_tensor_slices((files, tf.constant(labels, tf.int64)))
    ds = ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE)
    where = f"{path!r}" + ("" if split is None else f" (split {split!r})")
    return _pipeline(ds, len(files), stored, where, shuffle=shuffle, drop_remainder=drop_remainder,
                     with_labels=with_labels, **options)


def from_arrays(images, labels=None, split=None, validation_split=0.1, batch_size=128, binarize=None, shuffle=None,
                seed=None, drop_remainder=None, num_examples=None, with_labels=False, values="unit",
                image_size=None, crop=None):
    """Builds the same pipeline as `load_dataset` from images in memory or in a file.

    Args:
        images: `[N, H, W]` or `[N, H, W, C]` images, uint8 (or other
            integers) in 0..255 or floats in [0, 1]; or the path of a `.npy`
            file holding them, or of a `.npz` file holding `x_train` /
            `x_test` (with `y_train` / `y_test` labels if any; chosen by
            `split`) or `train` / `test`, or one array `images` (labels
            `labels`) or a single array.
        labels: `[N]` integer labels, for `with_labels`.
        split: `None` (every image), "train" or "test": a `.npz` file's own
            split, else a held-out share `validation_split` of the images
            (a fixed pseudorandom choice, the same for every seed).
        shuffle: Defaults to `True` for `split="train"` only: `split=None`
            yields every image in order, as an evaluation split does, so pass
            `shuffle=True` to train on all of them.
        Others: as `load_dataset`.
    """
    options = _options(binarize, values, batch_size, seed, num_examples, image_size, crop)
    split = validation.choice("split", split, (None, "train", "test"))
    if shuffle is None:
        shuffle = split == "train"
    _check_worker_seed(seed, shuffle, binarize, values)
    images, labels, presplit = _read_arrays(images, labels, split)
    images = _check_images(images)
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != (len(images),) or labels.dtype.kind not in "iu":
            raise ValueError(f"`labels` must be {len(images)} integers, one per image. "
                             f"Received: labels of shape {labels.shape} and dtype {labels.dtype}")
    elif with_labels:
        raise ValueError("`with_labels=True` needs `labels` (or y_train / y_test / labels in the file). "
                         "Received: no labels")
    if split is not None and not presplit:
        validation_split = _validation_split(validation_split, split)
        held_out = np.random.default_rng(0).random(len(images)) < validation_split
        keep = held_out == (split == "test")
        if not keep.any():
            raise ValueError(f"`validation_split` leaves the {split!r} split empty. "
                             f"Received: validation_split={validation_split!r}")
        images, labels = images[keep], (labels[keep] if labels is not None else None)
    labels = np.full(len(images), -1, "int64") if labels is None else labels.astype("int64")
    ds = tf.data.Dataset.from_tensor_slices((images, labels))
    where = "the arrays" + ("" if split is None else f" (split {split!r})")
    return _pipeline(ds, len(images), images.shape[1:], where, shuffle=shuffle, drop_remainder=drop_remainder,
                     with_labels=with_labels, **options)


# ---------------------------------------------------------------------- #
# Shared by the three sources
# ---------------------------------------------------------------------- #
def _options(binarize, values, batch_size, seed, num_examples, image_size, crop):
    validation.choice("binarize", binarize, BINARIZATIONS)
    validation.choice("values", values, VALUES)
    if binarize is not None and values != "unit":
        raise ValueError(f"`binarize` applies to grey values (values='unit'). Received: binarize={binarize!r}, "
                         f"values={values!r}")
    validation.positive_int("batch_size", batch_size)
    if seed is not None:
        validation.seed("seed", seed)
    if num_examples is not None:
        validation.positive_int("num_examples", num_examples)
    return {"binarize": binarize, "values": values, "batch_size": batch_size, "seed": seed,
            "num_examples": num_examples, "image_size": _size("image_size", image_size),
            "crop": _size("crop", crop)}


def _size(name, value):
    if value is None:
        return None
    pair = (value, value) if isinstance(value, (int, np.integer)) and not isinstance(value, bool) else value
    try:
        pair = validation.int_tuple(name, pair)
    except ValueError:
        pair = ()
    if len(pair) != 2 or min(pair) < 1:
        raise ValueError(f"`{name}` must be a positive integer or a (height, width) pair of them. "
                         f"Received: {name}={value!r}")
    return pair


def _check_worker_seed(seed, shuffle, binarize, values):
    if seed is None and (shuffle or binarize == "dynamic" or values == "dequantized") and distribute.num_workers() > 1:
        raise ValueError(
            "`seed` must be set when TF_CONFIG names several workers: every worker builds the "
            "pipeline and keeps its own share of each batch, which needs the same shuffling "
            "and noise on all of them. Received: seed=None"
        )


def _pipeline(ds, size, stored, where, *, batch_size, binarize, values, shuffle, seed, drop_remainder,
              num_examples, with_labels, image_size, crop):
    """`ds` of `(image, label)` (uint8 in 0..255, or floats in [0, 1]) ->
    cropped, resized, converted to `values`, cached, shuffled, batched."""
    if num_examples is not None:
        ds = ds.take(num_examples)
        size = min(size, num_examples)
    if drop_remainder is None:
        drop_remainder = bool(shuffle)
    if drop_remainder and size < batch_size:
        raise ValueError(
            f"`batch_size` must be at most the number of examples when incomplete batches are dropped "
            f"(the default when shuffling), or the dataset is empty: there are {size} ({where}"
            f"{'' if num_examples is None else f', num_examples={num_examples}'}). Received: batch_size={batch_size}"
        )
    height, width = stored[0], stored[1]
    if crop is not None and height is not None and (crop[0] > height or crop[1] > width):
        raise ValueError(f"`crop` must fit in the images, {height}x{width}. Received: crop={crop}")
    eight_bit = ds.element_spec[0].dtype == tf.uint8

    def geometry(image, label):
        if crop is not None:
            shape = tf.shape(image)
            image = tf.image.crop_to_bounding_box(image, (shape[0] - crop[0]) // 2, (shape[1] - crop[1]) // 2, *crop)
        if image_size is not None:
            resized = tf.image.resize(image, image_size, antialias=True)
            image = tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8) if eight_bit else resized
        return image, label

    if crop is not None or image_size is not None:
        ds = ds.map(geometry, num_parallel_calls=tf.data.AUTOTUNE)
    # Cached as stored (uint8 for 8-bit sources: a quarter of float32's memory).
    ds = ds.enumerate().cache()
    if shuffle:
        ds = ds.shuffle(max(size, 1), seed=seed, reshuffle_each_iteration=True)
    static_seed = tf.constant(0 if seed is None else seed, tf.int64)

    def convert(index, example):
        image, label = example
        if values == "unit":
            image = tf.cast(image, tf.float32) / 255.0 if eight_bit else tf.cast(image, tf.float32)
            if binarize == "static":
                noise = tf.random.stateless_uniform(tf.shape(image), seed=tf.stack([static_seed, index]))
                image = tf.cast(noise < image, tf.float32)
        else:
            image = tf.cast(image, tf.float32) if eight_bit else tf.round(tf.cast(image, tf.float32) * 255.0)
        return image, label

    ds = ds.map(convert, num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    if binarize == "dynamic" or values == "dequantized":
        # One stateless seed pair per batch, from a random stream that is
        # reproducible given `seed` but changes with every iteration (epoch).
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)

        def per_batch_noise(batch, batch_seed):
            image, label = batch
            noise = tf.random.stateless_uniform(tf.shape(image), seed=batch_seed)
            if binarize == "dynamic":
                return tf.cast(noise < image, tf.float32), label
            # x + u in float32 rounds up to x + 1 for u near 1: keep below it.
            return tf.minimum(image + noise, tf.math.nextafter(image + 1.0, image)), label

        ds = tf.data.Dataset.zip(ds, seeds).map(per_batch_noise, num_parallel_calls=tf.data.AUTOTUNE)
    if not with_labels:
        ds = ds.map(lambda image, label: image)
    # Under several workers every worker builds this same pipeline (same
    # seed, same order) and keeps its own share of each global batch: TFDS
    # stores MNIST in one file per split, so sharding by file cannot apply.
    return distribute.shardable(ds).prefetch(tf.data.AUTOTUNE)


def _feature_keys(builder, name, with_labels):
    """`(image key, label key or None)` of a TFDS builder's features."""
    features = builder.info.features
    images = [k for k, f in features.items() if isinstance(f, tfds.features.Image)]
    if not images:
        raise ValueError(f"`name` must be a TFDS dataset with an image feature. Received: name={name!r}, whose "
                         f"features are {', '.join(f'{k} ({type(f).__name__})' for k, f in features.items())}")
    label = "label" if "label" in features else None
    if with_labels and label is None:
        raise ValueError(f"`with_labels=True` needs a 'label' feature, which {name!r} does not have. "
                         f"Received: features {sorted(features)}")
    return ("image" if "image" in images else images[0]), label


def _validation_split(value, split):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(f"`validation_split` must be a number in [0, 1). Received: validation_split={value!r}")
    if split == "test" and value == 0:
        raise ValueError("`validation_split` must be > 0 for split='test'. Received: validation_split=0")
    return float(value)


def _hash_fraction(text):
    """A number in [0, 1) fixed by `text` (the first 8 bytes of its sha256)."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big") / 2.0**64


def _folder_labels(root, files):
    tops = [os.path.relpath(f, root).split(os.sep)[0] for f in files]
    loose = [f for f, top in zip(files, tops) if os.path.isfile(os.path.join(root, top))]
    if loose:
        raise ValueError(f"`with_labels=True` labels a file by its sub-folder of `path`; {loose[0]!r} is not in one. "
                         f"Received: path={root!r}")
    classes = sorted(set(tops))
    return [classes.index(top) for top in tops]


def _headers(files, need_one_size, path):
    """`({(height, width): first file of that size}, all grey)` from the
    files' headers; raises for an unreadable file and, when
    `need_one_size`, mixed sizes."""
    from PIL import Image, UnidentifiedImageError

    sizes, grey = {}, True
    for file in files:
        try:
            with Image.open(file) as image:
                width, height = image.size
                mode = image.mode
        except (OSError, UnidentifiedImageError) as error:
            raise ValueError(f"`path` must hold readable image files. Received: {file!r}, which cannot be read "
                             f"({_one_line(error)})") from None
        sizes.setdefault((height, width), file)
        grey &= mode in ("1", "L", "LA", "I", "I;16", "F") or (mode == "P" and _grey_palette(file))
    if len(sizes) > 1 and need_one_size:
        examples = ", ".join(f"{os.path.relpath(f, path)} {h}x{w}" for (h, w), f in list(sizes.items())[:3])
        raise ValueError(f"`image_size` must be given for images of different sizes, as in {path!r}: {examples}. "
                         "Received: image_size=None")
    return sizes, grey


def _grey_palette(file):
    """Whether a palette image is grey: its RGB channels equal everywhere."""
    from PIL import Image

    with Image.open(file) as image:
        rgb = np.asarray(image.convert("RGB"))
    return bool((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all())


def _read_arrays(images, labels, split):
    """`(images, labels, presplit)` from an array or a .npy / .npz path."""
    if not isinstance(images, (str, os.PathLike)):
        return images, labels, False
    path = os.path.expanduser(os.fspath(images))
    if not os.path.isfile(path) or not path.endswith((".npy", ".npz")):
        raise ValueError(f"`images` must be an array or an existing .npy / .npz file. Received: images={images!r}")
    try:
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise ValueError(f"`images` must be a readable .npy / .npz file. Received: {images!r} ({_one_line(error)})") \
            from None
    if isinstance(loaded, np.ndarray):
        return loaded, labels, False
    with loaded:
        keys = set(loaded.files)
        for x, y in (("x_{}", "y_{}"), ("{}", "{}_labels")):
            if {x.format("train"), x.format("test")} <= keys:
                if split is None:
                    raise ValueError(f"`split` must be 'train' or 'test' for {images!r}, which holds both. "
                                     "Received: split=None")
                y = y.format(split)
                return loaded[x.format(split)], (loaded[y] if y in keys else labels), True
        if "images" in keys:
            return loaded["images"], (loaded["labels"] if "labels" in keys else labels), False
        if len(keys) == 1:
            return loaded[keys.pop()], labels, False
    raise ValueError(f"`images` must be a .npz file holding x_train and x_test, train and test, images, or one "
                     f"array. Received: {images!r} with {sorted(keys)}")


def _check_images(images):
    try:
        images = np.asarray(images)
    except Exception as error:  # noqa: BLE001 - ragged lists and the like
        raise ValueError(f"`images` must be an array of images. Received: {type(images).__name__} "
                         f"({_one_line(error)})") from None
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[0] == 0 or images.shape[-1] not in (1, 3, 4):
        raise ValueError(f"`images` must have shape [N, H, W] or [N, H, W, C] with N >= 1 and C in 1, 3, 4. "
                         f"Received: images.shape={images.shape}")
    if images.dtype.kind in "iu":
        if images.min() < 0 or images.max() > 255:
            raise ValueError(f"`images` of integers must lie in 0..255. Received: values in "
                             f"[{images.min()}, {images.max()}]")
        return images.astype("uint8")
    if images.dtype.kind == "f":
        if not np.isfinite(images).all() or images.min() < 0 or images.max() > 1:
            raise ValueError(f"`images` of floats must lie in [0, 1] (divide 8-bit values by 255, or pass them "
                             f"as uint8). Received: values in [{np.nanmin(images)}, {np.nanmax(images)}]")
        return images.astype("float32")
    raise ValueError(f"`images` must hold integers or floats. Received: images.dtype={images.dtype}")
