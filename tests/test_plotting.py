import os

import matplotlib.image
import numpy as np
import pytest

from keras_vae import VAE, plotting


def test_tile_places_images_row_by_row():
    images = np.arange(5, dtype="float32")[:, None, None, None] * np.ones((5, 2, 3, 1), "float32")
    grid = plotting.tile(images, columns=3)
    assert grid.shape == (2 * 3 - 1, 3 * 4 - 1, 1)
    assert grid[0, 0, 0] == 0 and grid[0, 4, 0] == 1 and grid[3, 4, 0] == 4
    assert grid[2, 0, 0] == 1.0  # the gap row
    assert grid[3, 8, 0] == 1.0  # the blank cell after the last image


def test_save_grid_writes_a_png_atomically(tmp_path):
    path = tmp_path / "grid.png"
    plotting.save_grid(np.zeros((6, 28, 28, 1)), path, title="t")
    image = matplotlib.image.imread(path)
    assert image.shape[1] == 3 * (3 * 29 - 1)  # 3 columns, zoom 3
    assert os.listdir(tmp_path) == ["grid.png"]


def test_plots_of_a_model(tmp_path, mnist_binary):
    model = VAE(latent_dim=2, hidden_units=(8,), seed=0)
    for fn, args in [(plotting.plot_samples, ()), (plotting.plot_reconstructions, (mnist_binary[:12],)),
                     (plotting.plot_interpolations, (mnist_binary[:6],))]:
        path = fn(model, *args, path=tmp_path / f"{fn.__name__}.png")
        assert matplotlib.image.imread(path).ndim == 3


def test_bad_images_are_rejected():
    with pytest.raises(ValueError, match=r"`images` must have shape \(N, height, width, channels\)"):
        plotting.tile(np.zeros((28, 28)))
