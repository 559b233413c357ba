"""Pictures people want to look at: grids of samples, reconstructions,
interpolations and latent traversals; and charts of the latent space (a 2-D
map of the codes, the decoded manifold of a 2-d latent, the KL per unit).

Each picture has a builder that returns it as one `[height, width, channels]`
array in [0, 1] (`sample_grid`, `reconstruction_grid`, `traversal_grid`; what
`keras_vae.callbacks.ImageSummaries` writes to TensorBoard) and a `plot_*`
function that writes it as a PNG, atomically (a temporary file in the same
folder, then a rename), so an interrupted run never leaves half a PNG.
"""

import math
import statistics

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
    grid = np.clip(tile(images, columns), 0.0, 1.0)
    if grid.shape[-1] == 1:
        grid = grid[..., 0]
    height, width = grid.shape[:2]
    zoom, dpi, title_inches = 3, 100, 0.3 if title else 0.0
    fig_height = height * zoom / dpi + title_inches
    fig = _figure(width * zoom / dpi, fig_height)
    ax = fig.add_axes([0, 0, 1, 1 - title_inches / fig_height])
    ax.imshow(grid, cmap="gray" if grid.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
    ax.axis("off")
    if title:
        fig.text(0.5, 1 - 0.5 * title_inches / fig_height, title, ha="center", va="center", fontsize=8)
    return _save_figure(fig, path)


def _figure(width, height):
    """A matplotlib figure of `width x height` inches at 100 dpi (Agg: no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.figure(figsize=(width, height), dpi=100)


def _save_figure(fig, path):
    """Writes `fig` as a PNG at `path` atomically, closes it; returns `path`."""
    import matplotlib.pyplot as plt

    files.replace_atomically(path, lambda tmp: fig.savefig(tmp, format="png"), ".png")
    plt.close(fig)
    return path


def _samples(model, num_samples, seed, sample_kwargs):
    num_samples = validation.positive_int("num_samples", num_samples)
    return _grey(model, model.sample(num_samples, seed=seed, **sample_kwargs))


def sample_grid(model, num_samples=64, seed=0, **sample_kwargs):
    """Decoded prior samples (likelihood means) tiled into one image; the
    same `seed` gives the same draws, so grids of successive epochs compare."""
    return tile(_samples(model, num_samples, seed, sample_kwargs))


def plot_samples(model, path, num_samples=64, seed=0, **sample_kwargs):
    """Decoded samples (likelihood means) of `model.sample` as a grid: from
    the prior, or the sampler `fit_sampler` set; `sample_kwargs` go to
    `model.sample` (e.g. `temperature` for `VQVAE`)."""
    images = _samples(model, num_samples, seed, sample_kwargs)
    source = "the prior" if getattr(model, "sampler_layer", None) is None else "the fitted mixture"
    return save_grid(images, path, title=f"{model.name}: {len(images)} samples from {source}")


def _reconstruction_rows(model, x, num_images):
    num_images = validation.positive_int("num_images", num_images)
    x = np.asarray(x)[:num_images]
    recon = _grey(model, model.reconstruct(x))
    x = _grey(model, x)
    columns = min(len(x), 8)
    rows = []
    for start in range(0, len(x), columns):
        rows += [_pad(x[start : start + columns], columns), _pad(recon[start : start + columns], columns)]
    return np.concatenate(rows), columns


def reconstruction_grid(model, x, num_images=16):
    """Rows of originals, each followed by a row of their deterministic
    reconstructions, tiled into one image."""
    return tile(*_reconstruction_rows(model, x, num_images))


def plot_reconstructions(model, x, path, num_images=16):
    """Rows of originals, each followed by a row of their deterministic reconstructions."""
    images, columns = _reconstruction_rows(model, x, num_images)
    return save_grid(images, path, columns=columns,
                     title=f"{model.name}: originals (odd rows), reconstructions (even rows)")


def has_gaussian_latent(model):
    """Whether `model` has a vector latent with a Gaussian posterior (every
    `VAE`, `BetaVAE`, `ConvVAE`; not `AE` or `VQVAE`)."""
    return getattr(model, "posterior_layer", None) is not None


def unit_kls(model, x):
    """`[latent_dim]`: each latent unit's KL(q(z_u|x) || N(0, 1)) in nats,
    averaged over the images `x`. Defined where the model's KL is a sum over
    units (a diagonal-Gaussian posterior and the standard normal prior); a
    `ValueError` otherwise."""
    from keras_vae import posteriors, priors

    if not (isinstance(getattr(model, "posterior_layer", None), posteriors.DiagonalGaussian)
            and isinstance(model.prior_layer, priors.StandardNormal)):
        raise ValueError(
            "`unit_kls` needs a model whose KL is a sum over latent units: a diagonal-Gaussian posterior and the "
            f"standard normal prior. Received: {type(model).__name__} with "
            f"posterior={type(getattr(model, 'posterior_layer', None)).__name__}, "
            f"prior={type(getattr(model, 'prior_layer', None)).__name__}"
        )
    gaussian = model.encode(np.asarray(x)).distribution  # Independent(Normal): per-unit parameters
    mean, std = np.asarray(gaussian.mean(), "float64"), np.asarray(gaussian.stddev(), "float64")
    return np.mean(0.5 * (mean**2 + std**2 - 1.0) - np.log(std), axis=0)


def unit_order(model, x):
    """`(units, statistic, values)`: the latent units of `model`, most
    informative first, by their KL on `x` (`unit_kls`) where it splits over
    units, else by the variance of their code `model.latent` over `x`
    (Burda et al.'s activity statistic; needs at least 2 images)."""
    try:
        values, statistic = unit_kls(model, x), "KL"
    except ValueError:
        if len(x) < 2:
            raise ValueError(
                "`x` must hold at least 2 images to rank latent units by the variance of their codes. "
                f"Received: x.shape={np.shape(x)}"
            ) from None
        values, statistic = np.var(np.asarray(model.latent(np.asarray(x)), "float64"), axis=0), "code variance"
    return np.argsort(-values, kind="stable"), statistic, values


def _traversal(model, x, steps, limit, max_units):
    if not has_gaussian_latent(model):
        raise ValueError(
            "A latent traversal needs a model with a vector Gaussian latent (VAE, BetaVAE, ConvVAE). "
            f"Received: {type(model).__name__}"
        )
    steps = validation.positive_int("steps", steps)
    if not limit > 0:
        raise ValueError(f"`limit` must be > 0. Received: limit={limit!r}")
    x = np.asarray(x)
    units, statistic, _ = unit_order(model, x)
    if max_units is not None:
        units = units[: validation.positive_int("max_units", max_units)]
    base = np.asarray(model.latent(x[:1]))[0]
    values = np.linspace(-limit, limit, steps, dtype="float32")
    codes = np.repeat(base[None, None], len(units), 0).repeat(steps, 1)  # [units, steps, latent_dim]
    codes[np.arange(len(units)), :, units] = values
    images = _grey(model, model.decode(codes.reshape(-1, base.shape[-1])).mean())
    return images, units, statistic


def traversal_grid(model, x, steps=9, limit=3.0, max_units=None):
    """A latent traversal tiled into one image: from the code of `x[0]`
    (`model.latent`), one row per latent unit, that unit set to `steps` values
    evenly spaced over [-limit, limit] while the others stay fixed; rows in the
    order of `unit_order(model, x)` (the informative units first), at most
    `max_units` rows."""
    images, _, _ = _traversal(model, x, steps, limit, max_units)
    return tile(images, columns=steps)


def plot_traversal(model, x, path, steps=9, limit=3.0, max_units=None):
    """`traversal_grid` as a PNG, its title naming the units in row order."""
    images, units, statistic = _traversal(model, x, steps, limit, max_units)
    shown = ", ".join(str(u) for u in units[:12]) + (", ..." if len(units) > 12 else "")
    return save_grid(images, path, columns=steps,
                     title=f"{model.name}: units {shown} (by {statistic}), each over [-{limit:g}, {limit:g}]")


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


def _codes(model, x, batch_size=500):
    x = np.asarray(x)
    return np.concatenate([np.asarray(model.latent(x[i : i + batch_size])) for i in range(0, len(x), batch_size)])


def latent_map_points(model, x):
    """`(points, axis_labels)`: `[N, 2]` coordinates of the codes
    (`model.latent`) of the images `x` for a latent map: the two latent
    coordinates for a 2-d latent, else the centred codes projected on their
    first two principal directions (each axis label gives the share of the
    codes' variance it holds). Any model with a vector latent (not `VQVAE`)."""
    if len(getattr(model, "latent_shape", ())) != 1 or hasattr(model, "pixelcnn"):
        raise ValueError(f"A latent map needs a model with a vector latent. Received: {type(model).__name__}")
    x = np.asarray(x)
    if len(x) < 3:
        raise ValueError(f"`x` must hold at least 3 images for a latent map. Received: x.shape={x.shape}")
    codes = _codes(model, x).astype("float64")
    if codes.shape[1] == 2:
        return codes, ("z[0]", "z[1]")
    centred = codes - codes.mean(0)
    _, singular, directions = np.linalg.svd(centred, full_matrices=False)
    share = singular**2 / max(np.sum(singular**2), 1e-30)
    return centred @ directions[:2].T, tuple(
        f"principal direction {i + 1} ({share[i]:.0%} of the variance)" for i in range(2))


def plot_latent_map(model, x, path, labels=None):
    """`latent_map_points` as a scatter plot, coloured by `labels` (one
    integer or string per image) when given."""
    points, axes = latent_map_points(model, x)
    if labels is not None and len(labels) != len(points):
        raise ValueError(f"`labels` must have one label per image ({len(points)}). Received: {len(labels)} labels")
    fig = _figure(6, 5.5)
    ax = fig.add_subplot()
    if labels is None:
        ax.scatter(points[:, 0], points[:, 1], s=4, alpha=0.6)
    else:
        labels = np.asarray(labels)
        for value in np.unique(labels):
            chosen = labels == value
            ax.scatter(points[chosen, 0], points[chosen, 1], s=4, alpha=0.6, label=str(value))
        ax.legend(markerscale=3, fontsize=7, loc="best", title="label", title_fontsize=7)
    ax.set_xlabel(axes[0], fontsize=8)
    ax.set_ylabel(axes[1], fontsize=8)
    ax.set_title(f"{model.name}: codes of {len(points)} images", fontsize=9)
    fig.tight_layout()
    return _save_figure(fig, path)


def manifold_grid(model, size=20):
    """For a 2-d latent: the decodings (likelihood means) of a `size x size`
    grid of codes at the standard normal's quantiles 1/(2 size) .. 1 - 1/(2 size)
    in each coordinate (Kingma & Welling's picture), tiled into one image:
    z[0] grows to the right, z[1] upwards. Models with the standard normal
    prior, and `AE` (whose "prior noise" is the same)."""
    from keras_vae import priors

    size = validation.positive_int("size", size)
    if getattr(model, "latent_shape", None) != (2,) or hasattr(model, "pixelcnn"):
        raise ValueError(
            "A manifold grid needs a model with a 2-d vector latent (latent_dim=2). "
            f"Received: {type(model).__name__} with latent shape {getattr(model, 'latent_shape', None)}"
        )
    prior = getattr(model, "prior_layer", None)
    if prior is not None and not isinstance(prior, priors.StandardNormal):
        raise ValueError("A manifold grid spans the standard normal's quantiles, so it needs the standard normal "
                         f"prior (or none, as AE). Received: prior={type(prior).__name__}")
    normal = statistics.NormalDist()
    quantiles = np.array([normal.inv_cdf((i + 0.5) / size) for i in range(size)], "float32")
    codes = np.stack(np.meshgrid(quantiles, quantiles[::-1]), -1).reshape(-1, 2)  # z[1] grows upwards
    return tile(_grey(model, model.decode(codes).mean()), columns=size)


def plot_manifold(model, path, size=20):
    """`manifold_grid` as a PNG."""
    grid = manifold_grid(model, size)
    fig_inches = max(grid.shape[:2]) * 2 / 100
    fig = _figure(fig_inches, fig_inches + 0.3)
    ax = fig.add_axes([0, 0, 1, fig_inches / (fig_inches + 0.3)])
    ax.imshow(grid[..., 0] if grid.shape[-1] == 1 else grid, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.axis("off")
    fig.text(0.5, 1 - 0.15 / (fig_inches + 0.3), f"{model.name}: decoded codes at the N(0, 1) quantiles",
             ha="center", va="center", fontsize=8)
    return _save_figure(fig, path)


def plot_kl_units(model, x, path):
    """A bar chart of each latent unit's KL(q(z_u|x) || N(0, 1)) on the images
    `x` (`unit_kls`): collapsed units sit at 0. For a model whose KL does not
    split over units (flow posterior, Vamp or MAF prior), the variance of each
    unit's code across `x` instead, as the axis label says."""
    if not has_gaussian_latent(model):
        raise ValueError(
            "A KL-per-unit chart needs a model with a vector Gaussian latent (VAE, BetaVAE, ConvVAE). "
            f"Received: {type(model).__name__}"
        )
    _, statistic, values = unit_order(model, x)
    fig = _figure(max(4.0, 0.25 * len(values) + 1.5), 3.5)
    ax = fig.add_subplot()
    ax.bar(np.arange(len(values)), values, color="tab:blue")
    ax.set_xlabel("latent unit", fontsize=8)
    ax.set_ylabel("KL(q(z_u|x) || N(0, 1)), nats" if statistic == "KL" else "variance of the code over x", fontsize=8)
    total = f", total {values.sum():.2f} nats" if statistic == "KL" else ""
    ax.set_title(f"{model.name}: {statistic} per unit over {len(x)} images{total}", fontsize=9)
    ax.tick_params(labelsize=7)
    fig.tight_layout()
    return _save_figure(fig, path)


def _grey(model, images):
    """Pixel values of `model`'s convention as grey levels in [0, 1] (8-bit values / 255)."""
    return np.asarray(images, "float32") / model.likelihood.value_scale


def _pad(images, columns):
    """Pads a short last row with blank images."""
    missing = columns - len(images)
    if missing <= 0:
        return images
    return np.concatenate([images, np.ones((missing, *images.shape[1:]), images.dtype)])
