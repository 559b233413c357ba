"""PNG grids people want to look at: samples, reconstructions, interpolations.

Every function writes its file atomically (a temporary file in the same
folder, then a rename), so an interrupted run never leaves half a PNG.
"""

import math

import numpy as np

from keras_vae import files, validation


def tile(images, columns=None):
    """Tiles `[N, H, W, C]` images into one `[rows * H, columns * W, C]` array (1 px gaps)."""
    images = np.asarray(images, dtype="float32")
    if images.ndim != 4:
        raise ValueError(
            f"`images` must have shape (N, height, width, channels). Received: images.shape={images.shape}"
        )
    n, h, w, c = images.shape
    columns = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    grid = np.ones((rows * (h + 1) - 1, columns * (w + 1) - 1, c), "float32")
    for i, image in enumerate(images):
        r, col = divmod(i, columns)
        grid[r * (h + 1) : r * (h + 1) + h, col * (w + 1) : col * (w + 1) + w] = image
    return grid


def save_grid(images, path, columns=None, title=None):
    """Writes `images` (values in [0, 1]) as one PNG grid at `path`; returns `path`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = np.clip(tile(images, columns), 0.0, 1.0)
    if grid.shape[-1] == 1:
        grid = grid[..., 0]
    height, width = grid.shape[:2]
    zoom, dpi, title_inches = 3, 100, 0.3 if title else 0.0
    fig_height = height * zoom / dpi + title_inches
    fig = plt.figure(figsize=(width * zoom / dpi, fig_height), dpi=dpi)
    ax = fig.add_axes([0, 0, 1, 1 - title_inches / fig_height])
    ax.imshow(grid, cmap="gray" if grid.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
    ax.axis("off")
    if title:
        fig.text(0.5, 1 - 0.5 * title_inches / fig_height, title, ha="center", va="center", fontsize=8)
    files.replace_atomically(path, lambda tmp: fig.savefig(tmp, format="png"), ".png")
    plt.close(fig)
    return path


def plot_samples(model, path, num_samples=64, seed=0, **sample_kwargs):
    """Decoded prior samples (likelihood means) as a grid; `sample_kwargs`
    go to `model.sample` (e.g. `temperature` for `VQVAE`)."""
    num_samples = validation.positive_int("num_samples", num_samples)
    images = _grey(model, model.sample(num_samples, seed=seed, **sample_kwargs))
    return save_grid(images, path, title=f"{model.name}: {num_samples} samples from the prior")


def plot_reconstructions(model, x, path, num_images=16):
    """Rows of originals, each followed by a row of their deterministic reconstructions."""
    num_images = validation.positive_int("num_images", num_images)
    x = np.asarray(x)[:num_images]
    recon = _grey(model, model.reconstruct(x))
    x = _grey(model, x)
    columns = min(len(x), 8)
    rows = []
    for start in range(0, len(x), columns):
        rows += [_pad(x[start : start + columns], columns), _pad(recon[start : start + columns], columns)]
    return save_grid(np.concatenate(rows), path, columns=columns,
                     title=f"{model.name}: originals (odd rows), reconstructions (even rows)")


def plot_interpolations(model, x, path, steps=10):
    """Decodes straight lines between the latents (`model.latent`) of consecutive pairs of `x`."""
    steps = validation.positive_int("steps", steps)
    x = np.asarray(x)
    if len(x) < 2:
        raise ValueError(f"`x` must hold at least 2 images to interpolate. Received: x.shape={x.shape}")
    z = np.asarray(model.latent(x[: len(x) // 2 * 2]))
    start, end = z[0::2], z[1::2]
    weights = np.linspace(0.0, 1.0, steps, dtype="float32")[None, :, None]
    weights = weights.reshape(weights.shape + (1,) * (z.ndim - 2))
    path_z = start[:, None] * (1 - weights) + end[:, None] * weights  # [pairs, steps, *latent]
    images = _grey(model, model.decode(path_z.reshape(-1, *z.shape[1:])).mean())
    return save_grid(images, path, columns=steps, title=f"{model.name}: latent interpolations")


def _grey(model, images):
    """Pixel values of `model`'s convention as grey levels in [0, 1] (8-bit values / 255)."""
    return np.asarray(images, "float32") / model.likelihood.value_scale


def _pad(images, columns):
    """Pads a short last row with blank images."""
    missing = columns - len(images)
    if missing <= 0:
        return images
    return np.concatenate([images, np.ones((missing, *images.shape[1:]), images.dtype)])
