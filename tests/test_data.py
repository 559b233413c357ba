"""Tests for keras_vae.data on the real MNIST / Fashion-MNIST files (offline)."""

import shutil
import socket
import time

import numpy as np
import pytest
import tensorflow as tf

from keras_vae import data


@pytest.fixture(scope="session")
def data_dir(tfds_dir, manual_dirs):
    """The session TFDS dir with both datasets prepared once."""
    for name in data.DATASETS:
        data.prepare(name, data_dir=str(tfds_dir), manual_dir=manual_dirs[name])
    return str(tfds_dir)


def _epochs(ds, n=2):
    return [np.concatenate([b.numpy() for b in ds]) for _ in range(n)]


def _load(data_dir, **kwargs):
    kwargs.setdefault("name", "mnist")
    return data.load_dataset(data_dir=data_dir, **kwargs)


@pytest.mark.parametrize("binarize", data.BINARIZATIONS)
def test_shapes_dtypes_and_values(data_dir, binarize):
    ds = _load(data_dir, split="train", batch_size=64, num_examples=256,
               binarize=binarize, seed=0)
    assert ds.element_spec.shape.as_list() == [64, 28, 28, 1]
    assert ds.element_spec.dtype == tf.float32
    images = np.concatenate([b.numpy() for b in ds])
    assert images.shape == (256, 28, 28, 1) and images.dtype == np.float32
    assert images.min() == 0.0 and images.max() <= 1.0
    values = np.unique(images)
    if binarize is None:
        assert len(values) > 2 and images.max() == 1.0
    else:
        np.testing.assert_array_equal(values, [0.0, 1.0])
        assert abs(images.mean() - 0.13) < 0.03  # Mean MNIST grey value.


@pytest.mark.parametrize("shuffle", [False, True])
def test_dynamic_differs_per_epoch_and_is_reproducible(data_dir, shuffle):
    def make():
        return _load(data_dir, num_examples=256, batch_size=128,
                     binarize="dynamic", seed=7, shuffle=shuffle)

    a, b = _epochs(make()), _epochs(make())
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], a[1])
    if not shuffle:  # Same images, same order: only the draws changed.
        grey = _epochs(_load(data_dir, num_examples=256, shuffle=False), 1)[0]
        assert np.all(a[0][grey == 0] == 0) and np.all(a[0][grey == 1] == 1)
        assert 0.0 < np.mean(a[0] != a[1]) < 0.2


def test_dynamic_without_seed_is_random(data_dir):
    a = _epochs(_load(data_dir, num_examples=128, binarize="dynamic",
                      shuffle=False), 1)[0]
    b = _epochs(_load(data_dir, num_examples=128, binarize="dynamic",
                      shuffle=False), 1)[0]
    assert not np.array_equal(a, b)


def test_static_is_fixed(data_dir):
    def make(**kwargs):
        return _load(data_dir, num_examples=256, binarize="static",
                     shuffle=False, **kwargs)

    a = _epochs(make())
    np.testing.assert_array_equal(a[0], a[1])
    np.testing.assert_array_equal(a[0], _epochs(make(seed=0), 1)[0])
    assert not np.array_equal(a[0], _epochs(make(seed=1), 1)[0])
    # Shuffled: the same fixed images every epoch, only their order changes.
    s = _epochs(_load(data_dir, num_examples=256, binarize="static", seed=0))
    assert not np.array_equal(s[0], s[1])
    assert sorted(x.tobytes() for x in s[0]) == sorted(x.tobytes() for x in a[0])


def test_fashion_mnist_is_not_mnist(data_dir):
    mnist, fashion = (
        next(iter(_load(data_dir, name=n, split="test", batch_size=1000))).numpy()
        for n in data.DATASETS
    )
    assert not np.array_equal(mnist[0], fashion[0])
    # Mean grey values of the two datasets (about 0.13 and 0.29).
    assert abs(mnist.mean() - 0.13) < 0.02
    assert abs(fashion.mean() - 0.29) < 0.03


def test_with_labels(data_dir):
    ds = _load(data_dir, split="test", batch_size=100, num_examples=500,
               with_labels=True, binarize="dynamic")
    images_spec, labels_spec = ds.element_spec
    assert labels_spec.dtype == tf.int64
    images, labels = next(iter(ds))
    assert images.shape == (100, 28, 28, 1) and labels.shape == (100,)
    assert set(labels.numpy()) <= set(range(10)) and len(set(labels.numpy())) > 5


def test_test_split_keeps_everything_and_drop_remainder(data_dir):
    ds = _load(data_dir, split="test", batch_size=128)
    sizes = [b.shape[0] for b in ds]
    assert sum(sizes) == 10000 and sizes[-1] == 10000 % 128
    assert ds.element_spec.shape[0] is None
    dropped = _load(data_dir, split="test", batch_size=128, drop_remainder=True)
    assert [b.shape[0] for b in dropped] == [128] * (10000 // 128)
    # Training split: shuffled and remainder dropped by default.
    train = _load(data_dir, split="train[:300]", batch_size=128)
    assert train.element_spec.shape[0] == 128
    assert len(list(train)) == 2
    # Fewer examples than one batch would drop them all: refused, not an empty epoch.
    for kwargs in ({"split": "train[:100]"}, {"split": "train", "num_examples": 100}):
        with pytest.raises(ValueError, match=r"`batch_size` must be at most the number of examples .*there are 100 "
                                             r".*Received: batch_size=128"):
            _load(data_dir, batch_size=128, **kwargs)
    assert [b.shape[0] for b in _load(data_dir, split="train[:100]", batch_size=128, drop_remainder=False)] == [100]


def test_data_dir_from_environment(data_dir, monkeypatch):
    monkeypatch.setenv("TFDS_DATA_DIR", data_dir)
    ds = data.load_dataset("fashion_mnist", split="test[:10]", batch_size=10)
    assert next(iter(ds)).shape == (10, 28, 28, 1)


def test_global_batch_under_distribution_strategy(data_dir, two_replicas):
    strategy = two_replicas
    ds = _load(data_dir, num_examples=256, batch_size=64, binarize="dynamic")
    batch = next(iter(strategy.experimental_distribute_dataset(ds)))
    assert [t.shape[0] for t in strategy.experimental_local_results(batch)] == [32, 32]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"name": "no_such_dataset"}, r"`name` must be a TFDS dataset name .*Received: name='no_such_dataset'"),
        ({"binarize": "foo"},
         r"`binarize` must be one of \(None, 'dynamic', 'static'\)\. "
         r"Received: binarize='foo'"),
        ({"batch_size": 0},
         r"`batch_size` must be a positive integer\. Received: batch_size=0"),
        ({"batch_size": 1.5}, r"Received: batch_size=1\.5"),
        ({"batch_size": True}, r"Received: batch_size=True"),
        ({"num_examples": -3},
         r"`num_examples` must be a positive integer\. Received"),
        ({"split": 5}, r"`split` must be a TFDS split string .*Received: split=5"),
        ({"seed": -1}, r"`seed` must be an integer in \[0, 2147483647\]\. Received: seed=-1"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, match):
    kwargs.setdefault("name", "mnist")
    with pytest.raises(ValueError, match=match):
        data.load_dataset(data_dir=str(tmp_path), **kwargs)


def test_manual_dir_missing_files(tmp_path, manual_dirs):
    manual = tmp_path / "files" / "mnist"  # Parent folders are accepted too.
    manual.mkdir(parents=True)
    shutil.copy(manual_dirs["mnist"] / "t10k-labels-idx1-ubyte.gz", manual)
    with pytest.raises(data.DatasetUnavailableError) as info:
        data.prepare("mnist", data_dir=str(tmp_path / "tfds"),
                     manual_dir=tmp_path / "files")
    message = str(info.value)
    assert "manual_dir" in message and str(manual) in message
    assert "train-images-idx3-ubyte.gz" in message
    assert "'t10k-labels-idx1-ubyte.gz']" not in message.split("Missing")[1]


def test_manual_dir_with_corrupt_file(tmp_path, manual_dirs):
    manual = tmp_path / "mnist"
    shutil.copytree(manual_dirs["mnist"], manual)
    (manual / "train-labels-idx1-ubyte.gz").chmod(0o644)
    (manual / "train-labels-idx1-ubyte.gz").write_bytes(b"not the real file")
    with pytest.raises(data.DatasetUnavailableError, match="Checksum"):
        data.prepare("mnist", data_dir=str(tmp_path / "tfds"), manual_dir=manual)


def test_unprepared_without_manual_dir_fails_fast(tmp_path, monkeypatch):
    # Route the download through a proxy on a closed loopback port: the same
    # "host unreachable" path as an offline machine, with no outside traffic.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(var, closed)
    for var in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("KERAS_VAE_MANUAL_DIR", raising=False)
    start = time.monotonic()
    with pytest.raises(data.DatasetUnavailableError) as info:
        data.load_dataset("fashion_mnist", data_dir=str(tmp_path))
    assert time.monotonic() - start < 15
    message = str(info.value)
    for part in ("'fashion_mnist'", str(tmp_path), "manual_dir=", "TFDS_DATA_DIR"):
        assert part in message
    error = info.value  # No chained download traceback.
    assert error.__cause__ is None
    assert error.__context__ is None or error.__suppress_context__
