"""Tests for keras_vae.sprites: the dSprites factor grid, its rendering, the
ground-truth data for the metrics, the training pipeline and the TFDS loader.

Image axes: images are [row, column]; x_position moves the shape along the
columns (to the right), y_position along the rows (downwards)."""

import socket
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_vae import data, sprites

SIZES = sprites.FACTOR_SIZES
LAST = [s - 1 for s in SIZES]


def _grid(**fixed):
    """Every combination of the factors not in `fixed` (name -> list of indices), as [N, 5]."""
    axes = [fixed.get(name, range(size)) for name, size in zip(sprites.FACTOR_NAMES, SIZES)]
    return np.stack(np.meshgrid(*[np.asarray(a) for a in axes], indexing="ij"), -1).reshape(-1, 5)


def _render(factors):
    return sprites.render(np.asarray(factors))[..., 0].numpy()


def _centroid(images):
    """(row, column) of the foreground centroid of each image [N, 64, 64]."""
    rows, cols = np.arange(64)[:, None], np.arange(64)[None, :]
    area = images.sum((1, 2))
    return (images * rows).sum((1, 2)) / area, (images * cols).sum((1, 2)) / area


def _reference(factors):
    """The geometry the module doc states, in float64 numpy: (inside, |implicit function|)."""
    f = np.asarray(factors)
    radius = (10 * np.linspace(0.5, 1, 6)[f[:, 1]])[:, None, None]
    angle = np.linspace(0, 2 * np.pi, 40)[f[:, 2] % 39][:, None, None]  # 2*pi drawn as 0
    cx = (11 + 41 * np.linspace(0, 1, 32)[f[:, 3]])[:, None, None]
    cy = (11 + 41 * np.linspace(0, 1, 32)[f[:, 4]])[:, None, None]
    right = (np.arange(64.0)[None, None, :] - cx) / radius
    up = (cy - np.arange(64.0)[None, :, None]) / radius
    u = np.cos(angle) * right + np.sin(angle) * up
    v = np.cos(angle) * up - np.sin(angle) * right
    p, q = 1.25 * u, 1.25 * v + 0.25
    value = np.select([f[:, 0, None, None] == 0, f[:, 0, None, None] == 1],
                      [np.maximum(abs(u), abs(v)) - 1 / np.sqrt(2), u * u + 4 * v * v - 1],
                      (p * p + q * q - 1) ** 3 - p * p * q ** 3)
    return value <= 0, np.abs(value)


# ---------------------------------------------------------------------- #
# Factor grid
# ---------------------------------------------------------------------- #
def test_factor_grid_and_values():
    assert sprites.FACTOR_NAMES == ("shape", "scale", "orientation", "x_position", "y_position")
    assert SIZES == (3, 6, 40, 32, 32) and sprites.IMAGE_SHAPE == (64, 64, 1)
    assert sprites.NUM_IMAGES == 737280 == np.prod(SIZES)
    assert [len(v) for v in sprites.FACTOR_VALUES] == list(SIZES)
    np.testing.assert_allclose(sprites.FACTOR_VALUES[1], [0.5, 0.6, 0.7, 0.8, 0.9, 1.0], rtol=1e-6)
    values = sprites.factor_values([[0, 0, 0, 0, 0], LAST, [1, 2, 13, 1, 30]])
    assert values.dtype == np.float32 and values.shape == (3, 5)
    np.testing.assert_allclose(values, [[1, 0.5, 0, 0, 0], [3, 1, 2 * np.pi, 1, 1],
                                        [2, 0.7, 2 * np.pi / 3, 1 / 31, 30 / 31]], rtol=1e-6, atol=1e-7)


def test_index_round_trip_and_order():
    index = np.arange(sprites.NUM_IMAGES)
    factors = sprites.factors_of(index)
    assert factors.dtype == np.int64 and factors.shape == (737280, 5)
    np.testing.assert_array_equal(sprites.index_of(factors), index)
    assert (factors.min(0) == 0).all() and (factors.max(0) == LAST).all()
    # Shape slowest, y position fastest.
    np.testing.assert_array_equal(sprites.factors_of([0, 737279]), [[0, 0, 0, 0, 0], LAST])
    np.testing.assert_array_equal(sprites.index_of([[0, 0, 0, 0, 1], [0, 0, 0, 1, 0], [0, 0, 1, 0, 0],
                                                    [0, 1, 0, 0, 0], [1, 0, 0, 0, 0], LAST]),
                                  [1, 32, 1024, 40960, 245760, 737279])
    assert (np.diff(factors[:, 0]) >= 0).all()


# ---------------------------------------------------------------------- #
# Rendering
# ---------------------------------------------------------------------- #
def test_render_is_binary_deterministic_and_the_same_everywhere():
    factors = np.random.RandomState(0).randint(0, SIZES, size=(300, 5))
    images = sprites.render(factors)
    assert isinstance(images, tf.Tensor) and images.dtype == tf.float32 and images.shape == (300, 64, 64, 1)
    images = images.numpy()
    assert set(np.unique(images)) == {0.0, 1.0}
    np.testing.assert_array_equal(sprites.render(factors).numpy(), images)
    np.testing.assert_array_equal(sprites.render(tf.constant(factors, tf.int32)).numpy(), images)
    np.testing.assert_array_equal(sprites.render(factors.tolist()).numpy(), images)
    # Inside a tf.data map (a graph), per batch of mixed sizes.
    ds = tf.data.Dataset.from_tensor_slices(factors).batch(128).map(sprites.render)
    assert ds.element_spec.shape.as_list() == [None, 64, 64, 1]
    np.testing.assert_array_equal(np.concatenate([b.numpy() for b in ds]), images)
    # Chunked eager rendering of more than one chunk gives the same images.
    many = np.tile(factors, (30, 1))
    np.testing.assert_array_equal(sprites.render(many).numpy()[-300:], images)
    assert sprites.render(np.zeros((0, 5), int)).shape == (0, 64, 64, 1)


def test_render_follows_the_documented_geometry():
    rng = np.random.RandomState(1)
    factors = np.concatenate([rng.randint(0, SIZES, size=(2000, 5)), _grid(scale=[5], orientation=[0, 5, 39],
                                                                          x_position=[0, 31], y_position=[0, 31])])
    inside, margin = _reference(factors)
    rendered = _render(factors) == 1
    differ = rendered != inside
    # Only pixels on the boundary, up to float32 rounding, may differ.
    assert differ.sum() <= 10 and (margin[differ] < 1e-5).all()


def test_every_image_is_inside_the_frame():
    # Every shape, scale and orientation at the four extreme positions and at the centre.
    factors = np.concatenate([_grid(x_position=[0, 31], y_position=[0, 31]), _grid(x_position=[16], y_position=[16])])
    images = _render(factors)
    assert (images.sum((1, 2)) >= 30).all()  # the smallest ellipse covers about 39 pixels
    border = np.concatenate([images[:, 0], images[:, -1], images[:, :, 0], images[:, :, -1]], axis=1)
    assert not border.any()
    # The extreme positions use most of the frame: shapes reach the second pixel from each side.
    big = _render(_grid(shape=[0], scale=[5], orientation=[5], x_position=[0, 31], y_position=[0, 31]))
    assert big[:, 1:4].any() and big[:, -4:-1].any() and big[:, :, 1:4].any() and big[:, :, -4:-1].any()


@pytest.mark.parametrize("shape", range(3))
def test_centroid_follows_position(shape):
    along_x = _render(_grid(shape=[shape], scale=[2], orientation=[7], y_position=[10]))
    rows, cols = _centroid(along_x)
    assert (np.diff(cols) > 0).all() and np.ptp(rows) < 0.5
    assert abs(cols[-1] - cols[0] - 41) < 1.0  # centre from pixel 11 to pixel 52
    along_y = _render(_grid(shape=[shape], scale=[2], orientation=[7], x_position=[20]))
    rows, cols = _centroid(along_y)
    assert (np.diff(rows) > 0).all() and np.ptp(cols) < 0.5
    assert abs(rows[-1] - rows[0] - 41) < 1.0


@pytest.mark.parametrize("shape", range(3))
def test_area_grows_with_scale(shape):
    images = _render(_grid(shape=[shape], orientation=[0, 11, 23], x_position=[3, 17], y_position=[9]))
    area = images.sum((1, 2)).reshape(6, -1)  # [scale, others]
    assert (np.diff(area, axis=0) > 0).all()
    np.testing.assert_allclose(area[-1] / area[0], 4.0, rtol=0.15)  # area ~ scale**2


def test_rotation_keeps_area_and_shapes_differ_in_the_documented_order():
    area = _render(_grid(scale=[5], x_position=[8, 21], y_position=[13])).sum((1, 2)).reshape(3, -1)
    for shape, expected in enumerate((200.0, 157.1, 234.4)):  # documented areas at scale 1, px**2
        assert np.abs(area[shape] / area[shape].mean() - 1).max() < 0.04
        np.testing.assert_allclose(area[shape].mean(), expected, rtol=0.03)
    assert (area[2] > area[0]).all() and (area[0] > area[1]).all()  # heart > square > ellipse, every orientation
    for scale in range(6):  # the same order on average at every scale
        mean = _render(_grid(scale=[scale], x_position=[8, 21], y_position=[13])).sum((1, 2)).reshape(3, -1).mean(1)
        assert mean[2] > mean[0] > mean[1]
    three = _render(_grid(scale=[3], orientation=[4], x_position=[12], y_position=[19]))
    assert not np.array_equal(three[0], three[1]) and not np.array_equal(three[1], three[2])
    assert not np.array_equal(three[0], three[2])


def test_shape_outlines_and_rotation_direction():
    square, ellipse, heart = _render(_grid(scale=[5], orientation=[0], x_position=[15], y_position=[15]))
    assert square.any(0).sum() == square.any(1).sum() == 14  # side 14.1 px
    assert ellipse.any(0).sum() in (20, 21) and ellipse.any(1).sum() in (10, 11)  # elongated along the columns
    widths = heart.sum(1)[heart.any(1)]  # per row, top to bottom: lobes up, the tip at the bottom
    assert widths.argmax() < len(widths) / 2 and widths[-1] <= 3 and widths[0] < widths.max()
    # Orientation 5 (46 degrees) turns the ellipse counter-clockwise as displayed: the long axis rises
    # to the right, so the column grows as the row decreases.
    tilted = _render([[1, 5, 5, 15, 15]])[0]
    rows, cols = np.nonzero(tilted)
    assert np.corrcoef(rows, cols)[0, 1] < -0.5


def test_orientation_zero_and_two_pi_coincide():
    first = _grid(orientation=[0], x_position=[0, 13, 31], y_position=[5, 31])
    last = first.copy()
    last[:, 2] = 39
    np.testing.assert_array_equal(_render(first), _render(last))
    second = first.copy()
    second[:, 2] = 1
    assert not np.array_equal(_render(first)[first[:, 0] == 1], _render(second)[first[:, 0] == 1])


# ---------------------------------------------------------------------- #
# Ground-truth data
# ---------------------------------------------------------------------- #
def test_rendered_ground_truth():
    truth = sprites.ground_truth()
    assert isinstance(truth, sprites.RenderedSprites)
    assert truth.factor_sizes == SIZES and truth.factor_names == sprites.FACTOR_NAMES
    assert truth.observation_shape == (64, 64, 1)
    factors = truth.sample_factors(4000, np.random.RandomState(0))
    assert factors.dtype == np.int64 and factors.shape == (4000, 5)
    for column, size in enumerate(SIZES):
        np.testing.assert_array_equal(np.unique(factors[:, column]), np.arange(size))
    np.testing.assert_array_equal(factors, truth.sample_factors(4000, np.random.RandomState(0)))
    assert not np.array_equal(factors, truth.sample_factors(4000, np.random.RandomState(1)))
    assert truth.sample_factors(0, np.random.RandomState(0)).shape == (0, 5)
    observations = truth.sample_observations_from_factors(factors[:200], np.random.RandomState(0))
    assert isinstance(observations, np.ndarray) and observations.dtype == np.float32
    assert observations.shape == (200, 64, 64, 1)
    np.testing.assert_array_equal(observations, sprites.render(factors[:200]).numpy())


# ---------------------------------------------------------------------- #
# Training pipeline
# ---------------------------------------------------------------------- #
def _indices(ds):
    return np.concatenate([sprites.index_of(factors.numpy()) for _, factors in ds])


def test_pipeline_shapes_and_reproducible_order():
    ds = sprites.load_dataset(seed=3)
    assert ds.element_spec == tf.TensorSpec([64, 64, 64, 1], tf.float32)
    assert int(ds.cardinality()) == 737280 // 64
    batches = [b.numpy() for b in ds.take(3)]
    again = [b.numpy() for b in sprites.load_dataset(seed=3).take(3)]
    for a, b in zip(batches, again):
        np.testing.assert_array_equal(a, b)
    assert set(np.unique(batches[0])) == {0.0, 1.0}
    other = next(iter(sprites.load_dataset(seed=4))).numpy()
    assert not np.array_equal(other, batches[0])
    images, factors = next(iter(sprites.load_dataset(batch_size=32, seed=3, with_factors=True)))
    assert factors.dtype == tf.int64 and factors.shape == (32, 5) and images.shape == (32, 64, 64, 1)


def test_pipeline_epochs_cover_each_index_once_in_new_orders():
    ds = sprites.load_dataset(batch_size=100, seed=5, num_examples=500, with_factors=True)
    first, second = _indices(ds), _indices(ds)
    for epoch in (first, second):
        np.testing.assert_array_equal(np.sort(epoch), np.arange(500))
    assert np.mean(first != second) > 0.9 and np.mean(first != np.arange(500)) > 0.9
    rebuilt = sprites.load_dataset(batch_size=100, seed=5, num_examples=500, with_factors=True)
    np.testing.assert_array_equal(_indices(rebuilt), first)
    np.testing.assert_array_equal(_indices(rebuilt), second)
    for images, factors in ds.take(2):
        np.testing.assert_array_equal(images.numpy(), sprites.render(factors).numpy())


def test_pipeline_in_order_and_remainders():
    ordered = sprites.load_dataset(batch_size=128, shuffle=False, num_examples=300, with_factors=True)
    np.testing.assert_array_equal(_indices(ordered), np.arange(300))
    assert [int(f.shape[0]) for _, f in ordered] == [128, 128, 44]  # kept when not shuffling
    shuffled = sprites.load_dataset(batch_size=128, num_examples=300, seed=0)
    assert [int(b.shape[0]) for b in shuffled] == [128, 128]  # dropped when shuffling
    kept = sprites.load_dataset(batch_size=128, num_examples=300, seed=0, drop_remainder=False, with_factors=True)
    np.testing.assert_array_equal(np.sort(_indices(kept)), np.arange(300))


def test_evaluation_draw_is_the_first_epoch_of_the_training_order_at_every_iteration():
    ds = sprites.evaluation_dataset(num_examples=250, batch_size=100, seed=7, with_factors=True)
    assert [int(f.shape[0]) for _, f in ds] == [100, 100, 50]  # the last batch is kept
    first, second = _indices(ds), _indices(ds)
    np.testing.assert_array_equal(first, second)
    training = sprites.load_dataset(batch_size=50, seed=7, with_factors=True)
    np.testing.assert_array_equal(_indices(training.take(5)), first)
    assert len(np.unique(first)) == 250 and np.mean(first != np.arange(250)) > 0.9
    other = _indices(sprites.evaluation_dataset(num_examples=250, seed=8, with_factors=True))
    assert len(np.intersect1d(first, other)) < 5  # another seed, another draw
    images = next(iter(sprites.evaluation_dataset(num_examples=10, batch_size=10, seed=7)))
    np.testing.assert_array_equal(images.numpy(), sprites.render(sprites.factors_of(first[:10])).numpy())
    # A global seed (which TF combines with every op seed) leaves the fixed draw as it is.
    tf.random.set_seed(123)
    try:
        np.testing.assert_array_equal(_indices(sprites.evaluation_dataset(num_examples=250, seed=7,
                                                                          with_factors=True)), first)
        assert (_indices(sprites.load_dataset(batch_size=50, seed=7, with_factors=True).take(5)) != first).mean() > 0.9
    finally:
        tf.random.set_seed(None)


def test_pipeline_trains_with_fit():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((64, 64, 1)), keras.layers.Flatten(), keras.layers.Dense(4),
                              keras.layers.Dense(64 * 64), keras.layers.Reshape((64, 64, 1))])
    model.compile("adam", "binary_crossentropy")
    ds = sprites.load_dataset(batch_size=64, seed=0, num_examples=256).map(lambda x: (x, x))
    history = model.fit(ds, epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2 and np.isfinite(history.history["loss"]).all()


# ---------------------------------------------------------------------- #
# The original through TFDS
# ---------------------------------------------------------------------- #
@pytest.fixture
def offline(monkeypatch):
    """Routes downloads through a proxy on a closed loopback port: the same "host unreachable"
    path as this machine without internet, and no outside traffic on a machine with it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(var, closed)
    for var in ("no_proxy", "NO_PROXY", "KERAS_VAE_MANUAL_DIR", "TFDS_DATA_DIR"):
        monkeypatch.delenv(var, raising=False)


def test_tfds_unavailable_fails_fast_with_the_data_module_error(tmp_path, offline):
    for load in (lambda: sprites.DSprites(data_dir=str(tmp_path)),
                 lambda: sprites.ground_truth("tfds", data_dir=str(tmp_path)),
                 lambda: sprites.load_dataset(source="tfds", data_dir=str(tmp_path))):
        start = time.monotonic()
        with pytest.raises(data.DatasetUnavailableError) as info:
            load()
        assert time.monotonic() - start < 15
        message = str(info.value)
        for part in ("'dsprites'", str(tmp_path), "cannot reach", "manual_dir=", "TFDS_DATA_DIR"):
            assert part in message
        assert info.value.__cause__ is None
    empty = tmp_path / "files"
    empty.mkdir()
    with pytest.raises(data.DatasetUnavailableError, match=rf"{sprites.TFDS_FILE}.*manual_dir='{empty}'"):
        sprites.DSprites(data_dir=str(tmp_path), manual_dir=str(empty))


def _standin_records(factor_sizes, order_seed, batch=7):
    """A small in-memory stand-in for TFDS `dsprites` records (the real files cannot be downloaded here):
    every combination of a reduced grid, in a shuffled order, images uint8 0/1 as TFDS stores dSprites."""
    factors = np.stack(np.unravel_index(np.arange(np.prod(factor_sizes)), factor_sizes), 1)
    factors = factors[np.random.RandomState(order_seed).permutation(len(factors))]
    images = sprites.render(factors).numpy().astype(np.uint8)
    records = [{"image": images[i:i + batch], **{key: factors[i:i + batch, k] for k, key in
                                                 enumerate(sprites.TFDS_LABELS)}}
               for i in range(0, len(factors), batch)]
    return factors, records


def test_tfds_records_are_placed_by_their_labels():
    small = (3, 2, 3, 2, 2)
    factors, records = _standin_records(small, order_seed=0)
    truth = sprites.DSprites._from_records(records, factor_sizes=small)
    assert truth.factor_sizes == small and truth.observation_shape == (64, 64, 1)
    grid = np.stack(np.unravel_index(np.arange(72), small), 1)
    np.testing.assert_array_equal(truth.sample_observations_from_factors(grid, np.random.RandomState(0)),
                                  sprites.render(grid).numpy())
    sampled = truth.sample_factors(500, np.random.RandomState(0))
    assert (sampled.max(0) == np.array(small) - 1).all()
    with pytest.raises(ValueError, match=r"indices below \(3, 2, 3, 2, 2\)"):
        truth.sample_observations_from_factors([[0, 2, 0, 0, 0]], None)
    # A repeated or a missing combination, or a label outside the grid, is refused.
    repeated = [dict(r) for r in records]
    repeated[1] = {k: v.copy() for k, v in records[1].items()}
    for key in sprites.TFDS_LABELS:
        repeated[1][key][0] = records[0][key][0]
    with pytest.raises(ValueError, match="each of the 72 factor combinations exactly once.*repeated"):
        sprites.DSprites._from_records(repeated, factor_sizes=small)
    with pytest.raises(ValueError, match="1 combinations missing"):
        sprites.DSprites._from_records([{k: v[1:] for k, v in records[0].items()}] + records[1:], small)
    outside = [{k: (v + 5 if k == "label_scale" else v) for k, v in records[0].items()}]
    with pytest.raises(ValueError, match="labels outside"):
        sprites.DSprites._from_records(outside, factor_sizes=small)


def test_tfds_pipeline_serves_the_loaded_images(tmp_path, monkeypatch):
    # Stand-in for loaded TFDS images (the real files cannot be downloaded here): the bit-packed
    # array `DSprites` holds, filled with rendered images for the first 500 indices, zeros elsewhere.
    for var in ("KERAS_VAE_MANUAL_DIR", "TFDS_DATA_DIR"):
        monkeypatch.delenv(var, raising=False)
    packed = np.zeros((sprites.NUM_IMAGES, 64, 8), np.uint8)
    first = sprites.factors_of(np.arange(500))
    packed[:500] = np.packbits(_render(first) > 0, axis=-1)
    monkeypatch.setitem(sprites._TFDS_CACHE, (str(tmp_path), None), packed)
    ds = sprites.load_dataset(batch_size=100, seed=0, num_examples=500, with_factors=True, source="tfds",
                              data_dir=str(tmp_path))
    np.testing.assert_array_equal(np.sort(_indices(ds)), np.arange(500))
    for images, factors in ds:
        np.testing.assert_array_equal(images.numpy(), sprites.render(factors).numpy())
    truth = sprites.ground_truth("tfds", data_dir=str(tmp_path))
    np.testing.assert_array_equal(truth.sample_observations_from_factors(first[::7], None),
                                  sprites.render(first[::7]).numpy())


# ---------------------------------------------------------------------- #
# Bad inputs
# ---------------------------------------------------------------------- #
@pytest.mark.parametrize("call, match", [
    (lambda: sprites.render(np.zeros((2, 4), int)),
     r"`factors` must have shape \[N, 5\] with indices below \(3, 6, 40, 32, 32\)\. "
     r"Received: factors\.shape=\(2, 4\)"),
    (lambda: sprites.render([[0, 0, 40, 0, 0]]),
     r"Received: factors\[:, 2\] \(orientation\) with values in \[40, 40\]"),
    (lambda: sprites.render([[-1, 0, 0, 0, 0]]), r"factors\[:, 0\] \(shape\) with values in \[-1, -1\]"),
    (lambda: sprites.render(np.zeros((1, 5), np.float32)), r"as integers .*Received: factors\.dtype=float32"),
    (lambda: sprites.render("square"), r"`factors` must have shape .*Received: factors='square'"),
    (lambda: sprites.render(np.zeros(5, int)), r"Received: factors\.shape=\(5,\)"),
    (lambda: sprites.factor_values([[3, 0, 0, 0, 0]]), r"`factors` must .*factors\[:, 0\]"),
    (lambda: sprites.index_of([[0, 6, 0, 0, 0]]), r"`factors` must .*factors\[:, 1\] \(scale\)"),
    (lambda: sprites.factors_of([737280]),
     r"`index` must be integers in \[0, 737280\) of shape \[N\]\. Received: index with values in \[737280, 737280\]"),
    (lambda: sprites.factors_of([[1]]), r"`index` must .*Received: index\.shape=\(1, 1\)"),
    (lambda: sprites.factors_of([0.5]), r"`index` must .*Received: index\.dtype=float64"),
    (lambda: sprites.RenderedSprites().sample_factors(-1, np.random.RandomState(0)),
     r"`num` must be an integer >= 0\. Received: num=-1"),
    (lambda: sprites.RenderedSprites().sample_factors(3, 42),
     r"`random_state` must be a numpy\.random\.RandomState\. Received: random_state of type int"),
    (lambda: sprites.RenderedSprites().sample_observations_from_factors([[0, 0, 0, 32, 0]], None),
     r"factors\[:, 3\] \(x_position\)"),
    (lambda: sprites.ground_truth("mnist"),
     r"`source` must be one of \('rendered', 'tfds'\)\. Received: source='mnist'"),
    (lambda: sprites.ground_truth(data_dir="/tmp"), r"`data_dir` applies to source='tfds' only\. Received: data_dir="),
    (lambda: sprites.load_dataset(batch_size=0), r"`batch_size` must be a positive integer\. Received: batch_size=0"),
    (lambda: sprites.load_dataset(seed=-1), r"`seed` must be an integer in \[0, 2147483647\]\. Received: seed=-1"),
    (lambda: sprites.load_dataset(num_examples=737281), r"`num_examples` must be at most .*num_examples=737281"),
    (lambda: sprites.load_dataset(num_examples=0), r"`num_examples` must be a positive integer"),
    (lambda: sprites.load_dataset(shuffle="yes"), r"`shuffle` must be True or False\. Received: shuffle='yes'"),
    (lambda: sprites.load_dataset(with_factors=1), r"`with_factors` must be True or False"),
    (lambda: sprites.load_dataset(source="original"), r"`source` must be one of"),
    (lambda: sprites.load_dataset(manual_dir="/tmp"), r"`manual_dir` applies to source='tfds' only"),
    (lambda: sprites.evaluation_dataset(num_examples=0), r"`num_examples` must be a positive integer"),
    (lambda: sprites.evaluation_dataset(num_examples=737281), r"`num_examples` must be at most .*=737281"),
    (lambda: sprites.evaluation_dataset(batch_size=-2), r"`batch_size` must be a positive integer"),
    (lambda: sprites.evaluation_dataset(seed=None), r"`seed` must be an integer in \[0, 2147483647\]"),
    (lambda: sprites.evaluation_dataset(with_factors="no"), r"`with_factors` must be True or False"),
    (lambda: sprites.evaluation_dataset(source="tfds", data_dir=None, manual_dir=None, seed=1.5), r"`seed` must"),
    (lambda: sprites.load_dataset(batch_size=128, num_examples=100),
     r"`batch_size` must be at most the number of examples .*there are 100 .*Received: batch_size=128"),
])
def test_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_bad_factors_in_a_graph():
    floats = tf.data.Dataset.from_tensor_slices(np.zeros((4, 5), np.float32)).batch(2)
    with pytest.raises(ValueError, match=r"`factors` must hold integers .*Received: factors\.dtype=float32"):
        floats.map(sprites.render)
    with pytest.raises(ValueError, match=r"`factors` must have shape \[N, 5\] .*Received: factors\.shape=\(None, 3\)"):
        tf.data.Dataset.from_tensor_slices(np.zeros((4, 3), int)).batch(2).map(sprites.render)
    # Values are only known when the graph runs.
    outside = tf.data.Dataset.from_tensor_slices(np.array([[0, 0, 0, 0, 32]])).batch(1).map(sprites.render)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"`factors` must have shape \[N, 5\] with indices below"):
        next(iter(outside))
