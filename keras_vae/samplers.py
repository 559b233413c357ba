"""Samplers fitted after training: what `model.sample` draws z from instead
of the prior, set by `model.fit_sampler(data, kind=...)`.

| kind | z drawn from |
|---|---|
| `prior` | the model's prior p(z) (the default; `AE`: N(0, I)) |
| `gmm` | a Gaussian mixture with full covariances fitted by EM to the codes `model.latent(x)` of `data` |

A model's prior is what its KL term pulls the codes towards, but the codes of
the training set rarely fill it: prior draws land between them and decode to
blurry in-betweens. A mixture fitted to the codes themselves (Ghosh et al.
2020, "From variational to deterministic autoencoders") follows where the codes
are; for `AE`, which has no prior at all, it is what makes sampling work.

`GaussianMixtureSampler` is a Keras layer holding the mixture as
non-trainable float32 weights, so it is saved and restored with the model
(`.keras` files, SavedModel export: the `sample` signature draws from it).
The EM fit is this module's own (`fit_gaussian_mixture`, numpy float64):
k-means++ seeding, Lloyd iterations, then EM until the mean log-likelihood
gains less than `tolerance` nats per code, as scikit-learn's `GaussianMixture`
does, with the same `reg_covar` ridge on every covariance.
"""

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from keras_vae import validation

tfd = tfp.distributions

#: `fit_sampler(kind=...)` choices.
KINDS = ("prior", "gmm")


def _kmeans(x, components, rng, iterations=20):
    """Cluster labels of `x` by k-means++ seeding and Lloyd iterations."""
    centres = [x[rng.integers(len(x))]]
    distances = np.sum((x - centres[0]) ** 2, axis=1)
    for _ in range(1, components):
        total = distances.sum()
        chosen = rng.choice(len(x), p=distances / total) if total > 0 else rng.integers(len(x))
        centres.append(x[chosen])
        distances = np.minimum(distances, np.sum((x - x[chosen]) ** 2, axis=1))
    centres = np.stack(centres)
    for _ in range(iterations):
        labels = np.argmin(((x[:, None, :] - centres[None]) ** 2).sum(-1), axis=1)
        for k in range(components):
            if np.any(labels == k):
                centres[k] = x[labels == k].mean(0)
    return labels


def _log_densities(x, means, choleskys):
    """`[N, K]`: log N(x_n | mean_k, L_k L_k^T)."""
    dims = x.shape[1]
    out = np.empty((len(x), len(means)))
    for k, (mean, chol) in enumerate(zip(means, choleskys)):
        solved = np.linalg.solve(chol, (x - mean).T)  # L^-1 (x - mean)
        out[:, k] = (-0.5 * np.sum(solved**2, axis=0) - np.sum(np.log(np.diag(chol)))
                     - 0.5 * dims * np.log(2 * np.pi))
    return out


def _m_step(x, resp, reg_covar):
    counts = resp.sum(0) + 10 * np.finfo("float64").eps
    means = resp.T @ x / counts[:, None]
    choleskys = []
    for k in range(resp.shape[1]):
        centred = x - means[k]
        cov = (resp[:, k, None] * centred).T @ centred / counts[k] + reg_covar * np.eye(x.shape[1])
        choleskys.append(np.linalg.cholesky(cov))
    return counts / len(x), means, np.stack(choleskys)


def fit_gaussian_mixture(x, components, max_iterations=200, tolerance=1e-4, reg_covar=1e-6, seed=0):
    """Fits a `components`-Gaussian mixture with full covariances to the rows
    of `x` `[N, D]` by EM. Returns `(weights [K], means [K, D], scale_trils
    [K, D, D], history)`: `history[i]` is the mean log-likelihood of `x`
    (nats per row) under the parameters before the i-th M-step, and the last
    entry the one under the returned parameters, non-decreasing (EM) up to the
    `reg_covar` ridge."""
    x = np.asarray(x, "float64")
    if x.ndim != 2 or len(x) < components:
        raise ValueError(f"Fitting {components} components needs at least as many codes, as a [N, D] array. "
                         f"Received: codes of shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("The codes to fit a mixture to must be finite. Received: codes with NaN or inf values")
    rng = np.random.default_rng(seed)
    resp = np.eye(components)[_kmeans(x, components, rng)]
    weights, means, choleskys = _m_step(x, resp, reg_covar)
    history = []
    for _ in range(max_iterations):
        joint = _log_densities(x, means, choleskys) + np.log(weights)
        total = np.logaddexp.reduce(joint, axis=1)
        history.append(float(total.mean()))
        if len(history) > 1 and history[-1] - history[-2] < tolerance:
            break
        weights, means, choleskys = _m_step(x, np.exp(joint - total[:, None]), reg_covar)
    else:
        joint = _log_densities(x, means, choleskys) + np.log(weights)
        history.append(float(np.logaddexp.reduce(joint, axis=1).mean()))
    return weights, means, choleskys, history


@keras.saving.register_keras_serializable(package="keras_vae")
class GaussianMixtureSampler(keras.layers.Layer):
    """A mixture of `components` full-covariance Gaussians over `latent_dim`
    dimensions, held as non-trainable float32 weights (`logits`, `loc`,
    `scale_tril`) and fitted by `fit` (EM, `fit_gaussian_mixture`). Until
    fitted it is one component at N(0, I) and the rest with no weight."""

    def __init__(self, latent_dim, components=10, **kwargs):
        kwargs["dtype"] = "float32"
        super().__init__(**kwargs)
        self.latent_dim = validation.positive_int("latent_dim", latent_dim)
        self.components = validation.positive_int("components", components)
        self.build()

    def build(self, input_shape=None):
        k, d = self.components, self.latent_dim
        # Not autocast: the mixture stays float32 also inside a mixed-precision call.
        self.logits = self.add_weight(name="logits", shape=(k,), trainable=False, autocast=False,
                                      initializer=keras.initializers.Constant([0.0] + [-1e9] * (k - 1)))
        self.loc = self.add_weight(name="loc", shape=(k, d), trainable=False, initializer="zeros", autocast=False)
        self.scale_tril = self.add_weight(name="scale_tril", shape=(k, d, d), trainable=False, autocast=False,
                                          initializer=lambda shape, dtype=None: tf.eye(d, batch_shape=[k]))
        self.built = True

    def distribution(self):
        """The mixture as a `tfd.MixtureSameFamily` with event `[latent_dim]`."""
        return tfd.MixtureSameFamily(
            tfd.Categorical(logits=tf.convert_to_tensor(self.logits)),
            tfd.MultivariateNormalTriL(loc=tf.convert_to_tensor(self.loc),
                                       scale_tril=tf.convert_to_tensor(self.scale_tril)),
        )

    def fit(self, codes, max_iterations=200, tolerance=1e-4, reg_covar=1e-6, seed=0):
        """Fits the mixture to `codes` `[N, latent_dim]` by EM; returns the
        per-iteration mean log-likelihoods (see `fit_gaussian_mixture`)."""
        codes = np.asarray(codes)
        if codes.ndim != 2 or codes.shape[1] != self.latent_dim:
            raise ValueError(f"`codes` must have shape (N, {self.latent_dim}). Received: codes.shape={codes.shape}")
        weights, means, choleskys, history = fit_gaussian_mixture(
            codes, self.components, validation.positive_int("max_iterations", max_iterations),
            validation.positive_float("tolerance", tolerance), validation.positive_float("reg_covar", reg_covar),
            validation.seed("seed", seed))
        self.logits.assign(np.log(weights).astype("float32"))
        self.loc.assign(means.astype("float32"))
        self.scale_tril.assign(choleskys.astype("float32"))
        return history

    def get_config(self):
        return {**super().get_config(), "latent_dim": self.latent_dim, "components": self.components}
