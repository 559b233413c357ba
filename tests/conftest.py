"""Shared fixtures.

Two logical CPU devices are configured before TensorFlow initialises so that a
real two-replica `tf.distribute.MirroredStrategy` can run on one machine.
"""

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2
)

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(
    os.environ.get("KERAS_VAE_TEST_DATA", REPO.parent / "shared" / "data")
)


@pytest.fixture(scope="session")
def manual_dirs():
    """Folders holding the official MNIST / Fashion-MNIST release files."""
    dirs = {name: SHARED_DATA / name for name in ("mnist", "fashion_mnist")}
    missing = [str(d) for d in dirs.values() if not d.is_dir()]
    if missing:
        raise RuntimeError(
            f"Test data not found at {missing}. Set KERAS_VAE_TEST_DATA to the "
            "folder that holds mnist/ and fashion_mnist/."
        )
    return dirs


@pytest.fixture(scope="session")
def tfds_dir(tmp_path_factory):
    """A TFDS data dir shared by the whole session (prepared on first use)."""
    return tmp_path_factory.mktemp("tfds")


@pytest.fixture(scope="session")
def mnist_binary(tfds_dir, manual_dirs):
    """256 real MNIST training images, statically binarized, float32 [256, 28, 28, 1]."""
    from keras_vae import data

    ds = data.load_dataset(
        "mnist",
        split="train[:256]",
        batch_size=256,
        binarize="static",
        shuffle=False,
        data_dir=str(tfds_dir),
        manual_dir=str(manual_dirs["mnist"]),
    )
    return next(iter(ds)).numpy()


@pytest.fixture(scope="session")
def two_replicas():
    """One `MirroredStrategy` over the two logical CPUs, shared by the session
    (several strategies in one process collide on collective-op instance keys)."""
    return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
