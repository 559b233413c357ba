"""dSprites (Matthey et al. 2017): 2D shapes on a full grid of five ground-truth factors.

737,280 binary 64x64 images, one for each combination of

=============  ======  ==========================================================
factor         values  value of index k
=============  ======  ==========================================================
shape          3       1 (square), 2 (ellipse), 3 (heart)
scale          6       linspace(0.5, 1, 6)[k]
orientation    40      linspace(0, 2*pi, 40)[k]: the first and last coincide
x_position     32      linspace(0, 1, 32)[k]
y_position     32      linspace(0, 1, 32)[k]
=============  ======  ==========================================================

in the original's order (`index_of`, `factors_of`): shape varies slowest, y
position fastest. Two sources serve the grid:

* `render` draws it: a rendering of the same factor grid made by this module,
  NOT the original images, which cannot be downloaded everywhere. It looks
  alike (binary shapes 5-20 px across, an elongated ellipse, a heart) but its
  pixels differ. It uses TensorFlow ops only, vectorised over a batch, so the
  same function serves training pipelines (inside `tf.data` maps) and the
  metrics (eagerly, from numpy); the same factors give the same image at every
  call.
* `DSprites` loads the original through TFDS (`dsprites`), which needs internet
  access, or the official `.hdf5` file in `manual_dir`, the first time.

Geometry of the rendering, in pixel-index coordinates: pixel (row i, column j)
is the point (i, j), sampled at that point only (no antialiasing: 1 if the
point lies in the closed shape, else 0).

* Centre: column 11 + 41 * x_position, row 11 + 41 * y_position, so x grows to
  the right and y downwards along the rows (both from pixel 11 to pixel 52,
  symmetric about the frame's centre 31.5).
* Size: a shape of scale s lies in the disk of radius 10 * s px about its
  centre, at every orientation, so it stays at least one pixel clear of the
  frame's border. With (u, v) the offset from the centre divided by 10 * s,
  rotated into the shape's own axes (u to the right, v up at orientation 0):

  - square: max(|u|, |v|) <= 1 / sqrt(2), side 14.1 px at scale 1;
  - ellipse: u**2 + (v / 0.5)**2 <= 1, 20 x 10 px at scale 1, long axis along u;
  - heart: (p**2 + q**2 - 1)**3 <= p**2 * q**3 with p = 1.25 u, q = 1.25 v + 0.25,
    lobes up and tip down at orientation 0, 18.2 px wide, 17.9 px tall at
    scale 1 (the tip touches the disk).

  Areas at scale s, in px**2: heart 234 s**2 > square 200 s**2 > ellipse 157 s**2.
* Rotation: orientation t turns the shape counter-clockwise by t as displayed
  (rows downwards). The last orientation (2*pi) is drawn as the first (0):
  identical images, as in the original.

`RenderedSprites` and `DSprites` serve the ground-truth protocol of the
disentanglement metrics (`factor_sizes`, `factor_names`, `observation_shape`,
`sample_factors`, `sample_observations_from_factors`); `ground_truth(source)`
builds either. `load_dataset` is the training pipeline over the grid,
`evaluation_dataset` a fixed draw of it for validation and plots.
"""

import math
import os

import numpy as np
import tensorflow as tf

from keras_vae import data, distribute, validation

FACTOR_NAMES = ("shape", "scale", "orientation", "x_position", "y_position")
FACTOR_SIZES = (3, 6, 40, 32, 32)
IMAGE_SHAPE = (64, 64, 1)
NUM_IMAGES = math.prod(FACTOR_SIZES)  # 737280
#: The value of each factor index, float32 like TFDS's `value_*` features.
FACTOR_VALUES = (
    np.array([1.0, 2.0, 3.0], np.float32),
    np.linspace(0.5, 1.0, 6).astype(np.float32),
    np.linspace(0.0, 2 * np.pi, 40).astype(np.float32),
    np.linspace(0.0, 1.0, 32).astype(np.float32),
    np.linspace(0.0, 1.0, 32).astype(np.float32),
)
SHAPES = ("square", "ellipse", "heart")
SOURCES = ("rendered", "tfds")
#: The TFDS `dsprites` features holding the factor indices, in `FACTOR_NAMES` order.
TFDS_LABELS = tuple(f"label_{name}" for name in FACTOR_NAMES)
#: The official release file TFDS prepares `dsprites` from.
TFDS_FILE = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.hdf5"

_SIZE = 64
_RADIUS = 10.0  # px: every shape of scale 1 lies in this disk about its centre
_FIRST_CENTRE, _CENTRE_SPAN = 11.0, 41.0  # px: centre = 11 + 41 * position
_CHUNK = 8192  # images rendered at once by an eager `render`

_RADII = tf.constant(_RADIUS * FACTOR_VALUES[1].astype(np.float64), tf.float32)
_CENTRES = tf.constant(_FIRST_CENTRE + _CENTRE_SPAN * np.linspace(0.0, 1.0, 32), tf.float32)
# Orientation index 39 (2*pi) takes index 0's exact cosine and sine.
_ANGLES = 2 * np.pi * (np.arange(40) % 39) / 39
_COS = tf.constant(np.cos(_ANGLES), tf.float32)
_SIN = tf.constant(np.sin(_ANGLES), tf.float32)
# Each shape is evaluated on the 22 x 22 pixels from floor(centre) - 10: they hold its disk.
_WINDOW = 22
_WINDOW_STARTS = tf.constant(np.floor(_FIRST_CENTRE + _CENTRE_SPAN * np.linspace(0.0, 1.0, 32)).astype(np.int32) - 10)


# ---------------------------------------------------------------------- #
# Factors
# ---------------------------------------------------------------------- #
def _check_factors(name, factors, sizes=FACTOR_SIZES):
    """`factors` as an int64 numpy array `[N, len(sizes)]` of valid indices."""
    expected = f"`{name}` must have shape [N, {len(sizes)}] with indices below {tuple(sizes)}"
    if isinstance(factors, (str, bytes)):
        raise ValueError(f"{expected}. Received: {name}={factors!r}")
    try:
        array = np.asarray(factors)
    except Exception:  # noqa: BLE001 - ragged lists and the like
        raise ValueError(f"{expected}. Received: {name} of type {type(factors).__name__}") from None
    if array.dtype.kind not in "iu":
        raise ValueError(f"{expected}, as integers (indices, not factor values). "
                         f"Received: {name}.dtype={array.dtype}")
    if array.ndim != 2 or array.shape[1] != len(sizes):
        raise ValueError(f"{expected}. Received: {name}.shape={array.shape}")
    for column, size in enumerate(sizes):
        values = array[:, column]
        if values.size and (values.min() < 0 or values.max() >= size):
            raise ValueError(f"{expected}. Received: {name}[:, {column}] ({FACTOR_NAMES[column]}) with values in "
                             f"[{values.min()}, {values.max()}]")
    return array.astype(np.int64)


def _check_index(name, index, total=NUM_IMAGES):
    expected = f"`{name}` must be integers in [0, {total}) of shape [N]"
    if isinstance(index, (str, bytes)):
        raise ValueError(f"{expected}. Received: {name}={index!r}")
    array = np.asarray(index)
    if array.dtype.kind not in "iu":
        raise ValueError(f"{expected}. Received: {name}.dtype={array.dtype}")
    if array.ndim != 1:
        raise ValueError(f"{expected}. Received: {name}.shape={array.shape}")
    if array.size and (array.min() < 0 or array.max() >= total):
        raise ValueError(f"{expected}. Received: {name} with values in [{array.min()}, {array.max()}]")
    return array.astype(np.int64)


def factor_values(factors):
    """The factor values of factor indices.

    Args:
        factors: Integer indices `[N, 5]` (numpy, list or eager tensor).

    Returns:
        float32 numpy `[N, 5]`: shape 1/2/3, scale, orientation in radians,
        x and y position in [0, 1] (see `FACTOR_VALUES`).
    """
    factors = _check_factors("factors", factors)
    return np.stack([values[factors[:, k]] for k, values in enumerate(FACTOR_VALUES)], axis=1).reshape(-1, 5)


def index_of(factors):
    """The linear index of factor indices `[N, 5]` in the original's order
    (shape slowest, y position fastest): int64 numpy `[N]` in [0, 737280)."""
    factors = _check_factors("factors", factors)
    return np.ravel_multi_index(tuple(factors.T), FACTOR_SIZES).astype(np.int64)


def factors_of(index):
    """The factor indices of linear indices `[N]` (inverse of `index_of`): int64 numpy `[N, 5]`."""
    index = _check_index("index", index)
    return np.stack(np.unravel_index(index, FACTOR_SIZES), axis=1).astype(np.int64).reshape(-1, 5)


def _factors_of_tensor(index):
    """`factors_of` in TensorFlow ops: int64 `[N]` -> int64 `[N, 5]`."""
    strides = np.cumprod((1,) + FACTOR_SIZES[:0:-1])[::-1]
    return tf.stack([(index // int(stride)) % size for stride, size in zip(strides, FACTOR_SIZES)], axis=1)


# ---------------------------------------------------------------------- #
# Rendering
# ---------------------------------------------------------------------- #
@tf.function(input_signature=[tf.TensorSpec([None, 5], tf.int64)])
def _render(factors):
    """Valid int64 factor indices `[N, 5]` -> float32 `[N, 64, 64, 1]` in {0, 1}.

    The shape is evaluated on the `_WINDOW` x `_WINDOW` pixels holding its disk,
    then placed in the frame (the same pixels as evaluating the whole frame).
    """
    shape = factors[:, 0]
    radius = tf.gather(_RADII, factors[:, 1])[:, None, None]
    cos = tf.gather(_COS, factors[:, 2])[:, None, None]
    sin = tf.gather(_SIN, factors[:, 2])[:, None, None]
    first_col = tf.gather(_WINDOW_STARTS, factors[:, 3])[:, None]  # [N, 1]
    first_row = tf.gather(_WINDOW_STARTS, factors[:, 4])[:, None]
    window = tf.range(_WINDOW, dtype=tf.int32)[None, :]
    cols = tf.cast(first_col + window, tf.float32)  # [N, W], pixel indices
    rows = tf.cast(first_row + window, tf.float32)
    # Offsets from the centre in units of the shape's disk, y pointing up.
    right = (cols - tf.gather(_CENTRES, factors[:, 3])[:, None])[:, None, :] / radius  # [N, 1, W]
    up = (tf.gather(_CENTRES, factors[:, 4])[:, None] - rows)[:, :, None] / radius  # [N, W, 1]
    # Into the shape's axes: the shape turned counter-clockwise by the orientation.
    u = cos * right + sin * up
    v = cos * up - sin * right
    square = tf.maximum(tf.abs(u), tf.abs(v)) <= np.float32(1 / np.sqrt(2))
    ellipse = u * u + 4.0 * v * v <= 1.0
    p = 1.25 * u
    q = 1.25 * v + 0.25
    r = p * p + q * q - 1.0
    heart = r * r * r <= p * p * q * q * q
    shape = shape[:, None, None]
    inside = tf.cast(tf.where(shape == 0, square, tf.where(shape == 1, ellipse, heart)), tf.float32)  # [N, W, W]
    # Into the frame: frame pixel i takes window pixel i - first, zero outside the window.
    frame = tf.range(_SIZE, dtype=tf.int32)[None, :]
    row_in, col_in = frame - first_row, frame - first_col  # [N, 64]
    row_ok = tf.cast((row_in >= 0) & (row_in < _WINDOW), tf.float32)
    col_ok = tf.cast((col_in >= 0) & (col_in < _WINDOW), tf.float32)
    placed = tf.gather(inside, tf.clip_by_value(row_in, 0, _WINDOW - 1), axis=1, batch_dims=1) * row_ok[:, :, None]
    placed = tf.gather(placed, tf.clip_by_value(col_in, 0, _WINDOW - 1), axis=2, batch_dims=1) * col_ok[:, None, :]
    return placed[..., None]


def render(factors):
    """Renders the images of factor indices (see the module doc for the geometry).

    Args:
        factors: Integer factor indices `[N, 5]`: a numpy array, a list, or a
            tensor, eager or symbolic (inside `tf.data.Dataset.map` or a
            `tf.function`, where indices out of range fail when the graph runs).

    Returns:
        A float32 tensor `[N, 64, 64, 1]` with values in {0, 1}.
    """
    if isinstance(factors, tf.Tensor) and not tf.executing_eagerly():
        if not factors.dtype.is_integer:
            raise ValueError(f"`factors` must hold integers (indices, not factor values). "
                             f"Received: factors.dtype={factors.dtype.name}")
        if not factors.shape.is_compatible_with([None, 5]):
            raise ValueError(f"`factors` must have shape [N, 5] with indices below {FACTOR_SIZES}. "
                             f"Received: factors.shape={factors.shape}")
        factors = tf.cast(factors, tf.int64)
        message = f"`factors` must have shape [N, 5] with indices below {FACTOR_SIZES}"
        checks = [tf.debugging.assert_non_negative(factors, message=message),
                  tf.debugging.assert_less(factors, tf.constant(FACTOR_SIZES, tf.int64), message=message)]
        with tf.control_dependencies(checks):
            images = _render(tf.identity(factors))
        images.set_shape([factors.shape[0], *IMAGE_SHAPE])
        return images
    factors = _check_factors("factors", factors.numpy() if isinstance(factors, tf.Tensor) else factors)
    if len(factors) <= _CHUNK:
        return _render(tf.constant(factors))
    return tf.concat([_render(tf.constant(factors[i:i + _CHUNK])) for i in range(0, len(factors), _CHUNK)], 0)


# ---------------------------------------------------------------------- #
# Ground-truth data for the metrics
# ---------------------------------------------------------------------- #
def _check_random_state(name, value, optional=False):
    if isinstance(value, np.random.RandomState) or (optional and value is None):
        return value
    raise ValueError(f"`{name}` must be a numpy.random.RandomState{' or None' if optional else ''}. "
                     f"Received: {name} of type {type(value).__name__}")


class _GroundTruth:
    """The protocol of the ground-truth data the disentanglement metrics use."""

    factor_names = FACTOR_NAMES
    observation_shape = IMAGE_SHAPE
    factor_sizes = FACTOR_SIZES

    @property
    def num_factors(self):
        """How many factors: 5."""
        return len(self.factor_sizes)

    def sample_factors(self, num, random_state):
        """`num` factor combinations, each factor uniform over its indices.

        Args:
            num: How many, an integer >= 0.
            random_state: A `numpy.random.RandomState`.

        Returns:
            int64 numpy `[num, 5]` of factor indices.
        """
        num = validation.non_negative_int("num", num)
        _check_random_state("random_state", random_state)
        columns = [random_state.randint(size, size=num) for size in self.factor_sizes]
        return np.stack(columns, axis=1).astype(np.int64).reshape(num, self.num_factors)

    def sample_observations_from_factors(self, factors, random_state=None):
        """The images of factor indices.

        Args:
            factors: Integer factor indices `[N, 5]`.
            random_state: Unused (one image per combination); accepted for the protocol.

        Returns:
            float32 numpy `[N, 64, 64, 1]` with values in {0, 1}.
        """
        _check_random_state("random_state", random_state, optional=True)
        return self._images(_check_factors("factors", factors, self.factor_sizes))

    def _images(self, factors):
        raise NotImplementedError


class RenderedSprites(_GroundTruth):
    """The factor grid drawn by `render`: a rendering, not the original dSprites images.

    Attributes:
        factor_names: `FACTOR_NAMES`.
        factor_sizes: `FACTOR_SIZES`, (3, 6, 40, 32, 32).
        observation_shape: `IMAGE_SHAPE`, (64, 64, 1).
    """

    def _images(self, factors):
        return render(factors).numpy()

    def __repr__(self):
        return "RenderedSprites()"


_TFDS_CACHE = {}


class DSprites(_GroundTruth):
    """The original dSprites images, from TFDS `dsprites`, in memory.

    The first use prepares TFDS `dsprites` in `data_dir` (see
    `keras_vae.data.prepare`), which downloads the official file
    `TFDS_FILE` (27 MB) unless it is in `manual_dir`. TFDS stores the examples in its own order: each image is
    placed by its `label_*` features, and every factor combination must occur
    exactly once. The images are held bit-packed (512 bytes each, 377 MB in
    all), read once per process and `(data_dir, manual_dir)` (about a minute).

    Args:
        data_dir: TFDS data directory. Defaults to `TFDS_DATA_DIR`, then TFDS's default.
        manual_dir: Folder holding the official `.hdf5` file. Defaults to `KERAS_VAE_MANUAL_DIR`.

    Raises:
        keras_vae.data.DatasetUnavailableError: The dataset is not prepared and
            cannot be (no network, no file in `manual_dir`).
    """

    def __init__(self, data_dir=None, manual_dir=None):
        key = (data_dir or os.environ.get("TFDS_DATA_DIR") or None,
               manual_dir or os.environ.get("KERAS_VAE_MANUAL_DIR") or None)
        if key not in _TFDS_CACHE:
            _TFDS_CACHE[key] = _load_tfds(*key)
        self._packed = _TFDS_CACHE[key]

    @classmethod
    def _from_records(cls, batches, factor_sizes=FACTOR_SIZES):
        """An instance over `batches` of TFDS-style records (`image`, `label_*`) of the grid `factor_sizes`."""
        self = cls.__new__(cls)
        self.factor_sizes = tuple(factor_sizes)
        self._packed = _packed_by_index(batches, self.factor_sizes)
        return self

    def _images(self, factors):
        return _unpack(self._packed[np.ravel_multi_index(tuple(factors.T), self.factor_sizes)])

    def __repr__(self):
        return "DSprites()"


def _load_tfds(data_dir, manual_dir):
    import tensorflow_datasets as tfds

    manual = data._resolve_manual_dir("dsprites", manual_dir)
    if manual is not None and not tfds.builder("dsprites", data_dir=data_dir).is_prepared() \
            and not os.path.isfile(os.path.join(manual, TFDS_FILE)):
        raise data.DatasetUnavailableError(
            f"`manual_dir` for dataset 'dsprites' must be a folder holding the official file {TFDS_FILE!r}. "
            f"Missing from manual_dir={manual!r}")
    builder = data.prepare("dsprites", data_dir=data_dir, manual_dir=manual_dir)
    ds = builder.as_dataset(split="train", shuffle_files=False, read_config=tfds.ReadConfig(try_autocache=False))
    ds = ds.map(lambda ex: {key: ex[key] for key in ("image",) + TFDS_LABELS}, num_parallel_calls=tf.data.AUTOTUNE)
    return _packed_by_index(tfds.as_numpy(ds.batch(16384).prefetch(2)), FACTOR_SIZES)


def _packed_by_index(batches, factor_sizes):
    """Bit-packed images `[prod(factor_sizes), 64, 8]` uint8 ordered by linear factor index,
    from batches of records `{"image": [B, 64, 64, 1], "label_<factor>": [B]}` in any order."""
    total = math.prod(factor_sizes)
    expected = f"TFDS dataset 'dsprites' must hold each of the {total} factor combinations exactly once"
    packed = np.zeros((total, _SIZE, _SIZE // 8), np.uint8)
    seen = np.zeros(total, bool)
    for batch in batches:
        labels = np.stack([np.asarray(batch[key]) for key in TFDS_LABELS], axis=1)
        if ((labels < 0) | (labels >= np.asarray(factor_sizes))).any():
            raise ValueError(f"{expected}. Received: labels outside {tuple(factor_sizes)}, e.g. "
                             f"{labels[((labels < 0) | (labels >= np.asarray(factor_sizes))).any(1)][0].tolist()}")
        index = np.ravel_multi_index(tuple(labels.T), factor_sizes)
        repeated = seen[index].any() or len(np.unique(index)) < len(index)
        if repeated:
            raise ValueError(f"{expected}. Received: a repeated combination {_repeated(index, seen, factor_sizes)}")
        seen[index] = True
        packed[index] = np.packbits(np.asarray(batch["image"])[..., 0] > 0, axis=-1)
    if not seen.all():
        missing = np.flatnonzero(~seen)
        raise ValueError(f"{expected}. Received: {len(missing)} combinations missing, e.g. "
                         f"{list(np.unravel_index(missing[0], factor_sizes))}")
    return packed


def _repeated(index, seen, factor_sizes):
    values, counts = np.unique(index, return_counts=True)
    twice = values[counts > 1].tolist() + index[seen[index]].tolist()
    return [int(k) for k in np.unravel_index(twice[0], factor_sizes)]


def _unpack(packed):
    """Bit-packed `[N, 64, 8]` -> float32 `[N, 64, 64, 1]`."""
    return np.unpackbits(packed, axis=-1).astype(np.float32)[..., None]


def _unpack_tensor(packed):
    """`_unpack` in TensorFlow ops (the first pixel of a byte is its highest bit)."""
    shifts = tf.constant([7, 6, 5, 4, 3, 2, 1, 0], tf.uint8)
    bits = tf.bitwise.bitwise_and(tf.bitwise.right_shift(packed[..., None], shifts), 1)
    return tf.cast(tf.reshape(bits, [-1, _SIZE, _SIZE, 1]), tf.float32)


def _check_source(source, data_dir, manual_dir):
    validation.choice("source", source, SOURCES)
    if source == "rendered":
        for name, value in (("data_dir", data_dir), ("manual_dir", manual_dir)):
            if value is not None:
                raise ValueError(f"`{name}` applies to source='tfds' only. Received: {name}={value!r}, "
                                 "source='rendered'")


def ground_truth(source="rendered", data_dir=None, manual_dir=None):
    """The dSprites ground-truth data for the disentanglement metrics.

    Args:
        source: "rendered" (`RenderedSprites`, drawn here, no download) or
            "tfds" (`DSprites`, the original images).
        data_dir, manual_dir: For "tfds", see `DSprites`.
    """
    _check_source(source, data_dir, manual_dir)
    return RenderedSprites() if source == "rendered" else DSprites(data_dir, manual_dir)


# ---------------------------------------------------------------------- #
# Training pipeline
# ---------------------------------------------------------------------- #
def _check_bool(name, value, optional=False):
    if isinstance(value, (bool, np.bool_)) or (optional and value is None):
        return value if value is None else bool(value)
    raise ValueError(f"`{name}` must be True or False{' or None' if optional else ''}. Received: {name}={value!r}")


def load_dataset(batch_size=64, shuffle=True, seed=None, num_examples=None, with_factors=False,
                 drop_remainder=None, source="rendered", data_dir=None, manual_dir=None):
    """Builds a batched, prefetched `tf.data.Dataset` over the dSprites grid, for `model.fit`.

    One epoch yields every image of the grid once (or the images of the first
    `num_examples` linear indices). With `source="rendered"` the images are
    drawn by `render` in the pipeline (parallel calls), so nothing is held in
    memory; with "tfds" they are the original ones, held by `DSprites`.

    Args:
        batch_size: GLOBAL batch size. Under a `tf.distribute` strategy, Keras
            `fit` splits each batch across the replicas, so pass the total over
            all replicas.
        shuffle: Visit the indices in a pseudorandom permutation
            (`tf.random.experimental.index_shuffle`, exact, no memory), a new one
            each epoch; else in index order.
        seed: Makes shuffling reproducible: two pipelines built with the same
            seed (and the same TensorFlow global seed, which TF combines with
            every op seed) yield the same sequence of epochs, while each epoch
            still differs from the previous one. Required for training on several
            workers (`TF_CONFIG`), as in `keras_vae.data.load_dataset`.
        num_examples: Use only the linear indices `[0, num_examples)`.
        with_factors: Yield `(images, factors)`, factors int64 `[batch, 5]`.
        drop_remainder: Drop the last incomplete batch. Defaults to `shuffle`.
        source: "rendered" or "tfds" (see `ground_truth`).
        data_dir, manual_dir: For "tfds", see `DSprites`.

    Returns:
        A `tf.data.Dataset` of float32 images `[batch, 64, 64, 1]` in {0, 1}, or `(images, factors)`.
    """
    validation.positive_int("batch_size", batch_size)
    shuffle = _check_bool("shuffle", shuffle)
    with_factors = _check_bool("with_factors", with_factors)
    drop_remainder = _check_bool("drop_remainder", drop_remainder, optional=True)
    if seed is not None:
        validation.seed("seed", seed)
    if num_examples is not None:
        validation.positive_int("num_examples", num_examples)
        if num_examples > NUM_IMAGES:
            raise ValueError(f"`num_examples` must be at most the {NUM_IMAGES} images of the grid. "
                             f"Received: num_examples={num_examples}")
    _check_source(source, data_dir, manual_dir)
    data._check_worker_seed(seed, shuffle, None, "unit")
    size = NUM_IMAGES if num_examples is None else num_examples
    if drop_remainder is None:
        drop_remainder = shuffle
    if drop_remainder and size < batch_size:
        raise ValueError(
            f"`batch_size` must be at most the number of examples when incomplete batches are dropped "
            f"(the default when shuffling): there are {size}"
            f"{'' if num_examples is None else f' (num_examples={num_examples})'}. Received: batch_size={batch_size}")
    positions = tf.data.Dataset.range(size).batch(batch_size, drop_remainder=drop_remainder)
    if shuffle:
        # One seed pair per epoch, from a stream reproducible given `seed` that changes every iteration.
        epoch_seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
        epoch_seeds = epoch_seeds.batch(2, drop_remainder=True).take(1)
        num_batches = size // batch_size if drop_remainder else -(-size // batch_size)
        indices = epoch_seeds.flat_map(lambda pair: positions.map(lambda i: _shuffled(i, pair, size)))
        indices = indices.apply(tf.data.experimental.assert_cardinality(num_batches))
    else:
        indices = positions
    # Under several workers every worker builds this same pipeline (same seed,
    # same order) and keeps its own share of each global batch.
    return _pipeline(indices, with_factors, source, data_dir, manual_dir)


def evaluation_dataset(num_examples=10000, batch_size=100, seed=1, with_factors=False, source="rendered",
                       data_dir=None, manual_dir=None):
    """A fixed draw of grid images for `validation_data`, `evaluate` and plots.

    dSprites has no test split (disentanglement_lib measures on the training
    grid too): these are the first `num_examples` images of the order in which
    `load_dataset(shuffle=True, seed=seed)` visits the whole grid in its first
    epoch in a program without a TensorFlow global seed, the same images, in
    the same order, at every iteration and whatever global seed is set.

    Args:
        num_examples: How many images, at most the grid's 737,280.
        batch_size: Batch size (the last batch may be smaller).
        seed: The draw.
        with_factors: Yield `(images, factors)`, factors int64 `[batch, 5]`.
        source, data_dir, manual_dir: As for `load_dataset`.

    Returns:
        A `tf.data.Dataset` of float32 images `[batch, 64, 64, 1]` in {0, 1}, or `(images, factors)`.
    """
    validation.positive_int("num_examples", num_examples)
    if num_examples > NUM_IMAGES:
        raise ValueError(f"`num_examples` must be at most the {NUM_IMAGES} images of the grid. "
                         f"Received: num_examples={num_examples}")
    validation.positive_int("batch_size", batch_size)
    validation.seed("seed", seed)
    with_factors = _check_bool("with_factors", with_factors)
    _check_source(source, data_dir, manual_dir)
    indices = _shuffled(tf.range(num_examples, dtype=tf.int64), _first_epoch_pair(seed), NUM_IMAGES)
    return _pipeline(tf.data.Dataset.from_tensor_slices(indices).batch(batch_size), with_factors, source,
                     data_dir, manual_dir)


def _first_epoch_pair(seed):
    """The first epoch's seed pair of `load_dataset(shuffle=True, seed=seed)`'s
    stream as a program that sets no TensorFlow global seed draws it. TF
    combines an op's seed with the global one (`tf.random.set_seed`,
    `keras.utils.set_random_seed`), which would make this fixed draw depend
    on what the caller seeded; a fresh graph has no global seed."""
    with tf.Graph().as_default():
        stream = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        first = stream.take(1).get_single_element()
        with tf.compat.v1.Session() as session:
            pair = session.run(first)
    return tf.constant(pair)


def _shuffled(positions, pair, size):
    """Position -> grid index under the permutation of `[0, size)` that `pair` seeds."""
    return tf.random.experimental.index_shuffle(positions, pair, tf.constant(size - 1, tf.int64))


def _pipeline(indices, with_factors, source, data_dir, manual_dir):
    """Batches of grid indices -> batches of images (and factors), prefetched."""
    if source == "rendered":
        images_of = _render
    else:
        packed = tf.constant(DSprites(data_dir, manual_dir)._packed)

        def images_of(factors):
            return _unpack_tensor(tf.gather(packed, _index_of_tensor(factors)))

    def example(index):
        factors = _factors_of_tensor(index)
        images = images_of(factors)
        images.set_shape([index.shape[0], *IMAGE_SHAPE])
        return (images, factors) if with_factors else images

    ds = indices.map(example, num_parallel_calls=tf.data.AUTOTUNE)
    return distribute.shardable(ds).prefetch(tf.data.AUTOTUNE)


def _index_of_tensor(factors):
    strides = np.cumprod((1,) + FACTOR_SIZES[:0:-1])[::-1]
    return tf.add_n([factors[:, k] * int(stride) for k, stride in enumerate(strides)])


__all__ = [
    "FACTOR_NAMES", "FACTOR_SIZES", "FACTOR_VALUES", "IMAGE_SHAPE", "NUM_IMAGES", "SHAPES", "SOURCES", "TFDS_FILE",
    "TFDS_LABELS", "DSprites", "RenderedSprites", "evaluation_dataset", "factor_values", "factors_of", "ground_truth",
    "index_of", "load_dataset", "render",
]
