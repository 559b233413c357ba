import os

import keras
import numpy as np
import pytest

from keras_vae import files


def test_save_model_replaces_the_file_only_when_complete(tmp_path):
    path = tmp_path / "m.keras"
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    files.save_model(model, path)
    np.testing.assert_array_equal(keras.models.load_model(path).get_weights()[0], model.get_weights()[0])
    before = path.read_bytes()

    class FailsHalfway:  # a save that dies after writing part of the file
        def save(self, target):
            with open(target, "wb") as f:
                f.write(b"half")
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        files.save_model(FailsHalfway(), path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.keras"]


def test_save_model_wants_a_keras_file_name(tmp_path):
    with pytest.raises(ValueError, match=r"`path` must be a .keras file name. Received: path='.*m.h5'"):
        files.save_model(None, tmp_path / "m.h5")
    assert os.listdir(tmp_path) == []


def test_write_text_creates_folders(tmp_path):
    files.write_text(tmp_path / "a" / "b.json", "{}")
    assert (tmp_path / "a" / "b.json").read_text() == "{}"


def test_written_files_get_the_usual_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        path = files.write_text(tmp_path / "a.json", "{}")
    finally:
        os.umask(old)
    assert os.stat(path).st_mode & 0o777 == 0o644  # not mkstemp's 0600
