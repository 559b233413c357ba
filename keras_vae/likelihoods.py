"""Observation models p(x | z), chosen by name.

A likelihood is a small Keras layer that turns the decoder's output tensor
(`params_per_element` values per data element, shape `[..., *params_shape]`
with `params_shape = (*event_shape[:-1], event_shape[-1] * params_per_element)`)
into a `tfd.Distribution` whose event is one whole data point. It owns any
learned parameter of the observation model (a Gaussian's scale) so that the
parameter is trained, saved and restored with the model, and it names the
pixel values it models (`values`, what `keras_vae.data` pipelines produce
with `values=` / `binarize=`).

| name | distribution | decoder output per element | data (`values`) |
|---|---|---|---|
| `bernoulli` | `Bernoulli(logits)` | logits | {0, 1} (`"binary"`) |
| `continuous_bernoulli` | `ContinuousBernoulli(logits)` (Loaiza-Ganem & Cunningham 2019) | logits | [0, 1] (`"unit"`) |
| `gaussian` | `Normal(loc, scale)`, `scale` fixed | loc | reals (`"unit"`) |
| `gaussian_learned_scale` | `Normal(loc, s)`, one learned `s` | loc | reals (`"unit"`) |
| `gaussian_learned_pixel_scale` | `Normal(loc, s)`, one learned `s` per element | loc | reals (`"unit"`) |
| `discretized_logistic` | the mass of each 8-bit value under a logistic, edge bins open | loc, log scale | {0, ..., 255} (`"8bit"`) |
| `discretized_logistic_mixture` | a mixture of 5 of those per element (`DiscretizedLogistic(shape, num_components=K)` for other K) | K logits, K locs, K log scales | {0, ..., 255} (`"8bit"`) |
| `dequantized_gaussian` | `Normal(loc, s)` on `v / 256` with one learned `s` per element, as a density on `v` | loc | [0, 256) (`"dequantized"`: `x + u`, `u ~ U[0, 1)`) |

The 8-bit likelihoods give log-probabilities in nats per image that
`bits_per_dim` (`evaluate(iw_samples=k)`: `nll / (prod(data_shape) ln 2)`)
turns into the number papers report. `discretized_logistic` is a probability
mass, so its bound is a bound on the discrete likelihood.
`dequantized_gaussian` is a density on dequantized pixels `v = x + u` in pixel
units: its Gaussian on `v / 256` is pushed through `tfb.Scale(256)`, which
subtracts `log 256` per element, the correction that turns a density on
`[0, 1)` into one on `[0, 256)`; by Jensen's inequality its expected
log-density over `u` is a lower bound on the discrete log-likelihood (Theis et
al. 2016), so its bits per dimension bound the discrete ones from above and
compare with the masses'.

Encoders of the zoo's models see every convention as grey levels in [0, 1]
(a `Rescaling(1 / value_scale)` first layer for 8-bit values).

All log-probabilities are computed in float32, whatever the model's dtype
policy.
"""

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from keras_vae import validation

tfb = tfp.bijectors
tfd = tfp.distributions

_MIN_SCALE = 1e-4
#: The pixel-value conventions a likelihood can model (`Likelihood.values`).
VALUES = ("binary", "unit", "8bit", "dequantized")


@keras.saving.register_keras_serializable(package="keras_vae")
class Likelihood(keras.layers.Layer):
    """Base class: maps decoder outputs to p(x | z).

    Subclasses implement `distribution(params)`; `params` has shape
    `[..., *event_shape]` and the returned distribution has that batch shape
    `[...]` and event shape `event_shape`.

    Args:
        event_shape: shape of one data point, e.g. `(28, 28, 1)`.
    """

    #: Human-readable support, used in error messages.
    support = "the real numbers"
    #: The pixel values modelled, one of `VALUES` ("unit": grey values in
    #: [0, 1]; "binary": {0, 1}; "8bit": integers 0..255; "dequantized":
    #: 8-bit values plus uniform noise, in [0, 256)).
    values = "unit"
    #: Decoder outputs per data element.
    params_per_element = 1

    @property
    def value_scale(self):
        """What a pixel value is divided by to give a grey level in [0, 1]."""
        return {"8bit": 255.0, "dequantized": 256.0}.get(self.values, 1.0)

    @property
    def params_shape(self):
        """The decoder's output shape for one data point."""
        *lead, channels = self.event_shape
        return (*lead, channels * self.params_per_element)

    def _split_params(self, params):
        """`[..., *params_shape]` -> `[..., *event_shape, params_per_element]`."""
        shape = tf.concat([tf.shape(params)[:-1], [self.event_shape[-1], self.params_per_element]], 0)
        return tf.reshape(params, shape)

    def __init__(self, event_shape, **kwargs):
        kwargs["dtype"] = "float32"  # log-probs stay float32 under mixed precision
        super().__init__(**kwargs)
        self.event_shape = tuple(int(d) for d in event_shape)

    def build(self, input_shape=None):
        self.built = True

    def distribution(self, params):
        raise NotImplementedError

    def _independent(self, base):
        return tfd.Independent(base, reinterpreted_batch_ndims=len(self.event_shape))

    def support_violation(self, x):
        """Returns a description of the values of numpy `x` outside the support, or None."""
        return None

    def get_config(self):
        config = super().get_config()
        config.pop("dtype", None)
        config["event_shape"] = self.event_shape
        return config


@keras.saving.register_keras_serializable(package="keras_vae")
class Bernoulli(Likelihood):
    """Independent Bernoulli pixels parameterised by logits (binary data)."""

    support = "{0, 1}"
    values = "binary"

    def distribution(self, params):
        return self._independent(tfd.Bernoulli(logits=params, dtype=params.dtype))

    def support_violation(self, x):
        bad = (x != 0) & (x != 1)
        if bad.any():
            return (
                f"{int(bad.sum())} values not in {{0, 1}} (e.g. {x[bad].flat[0]!r}); "
                "binarize the data (e.g. `binarize='dynamic'`) or use "
                "likelihood='continuous_bernoulli' for grey values"
            )
        return None


@keras.saving.register_keras_serializable(package="keras_vae")
class ContinuousBernoulli(Likelihood):
    """Continuous Bernoulli pixels parameterised by logits (grey values in [0, 1])."""

    support = "[0, 1]"

    def distribution(self, params):
        return self._independent(tfd.ContinuousBernoulli(logits=params))

    def support_violation(self, x):
        bad = (x < 0) | (x > 1)
        if bad.any():
            return f"{int(bad.sum())} values outside [0, 1] (e.g. {x[bad].flat[0]!r})"
        return None


@keras.saving.register_keras_serializable(package="keras_vae")
class Gaussian(Likelihood):
    """Independent Normal pixels with mean from the decoder.

    Args:
        event_shape: shape of one data point.
        scale: the fixed standard deviation (a positive float), or `"learned"`
            for one learned standard deviation shared by all elements, or
            `"learned_per_element"` for one per element of the event.
    """

    SCALES = ("learned", "learned_per_element")

    def __init__(self, event_shape, scale=0.1, **kwargs):
        super().__init__(event_shape, **kwargs)
        if isinstance(scale, str):
            if scale not in self.SCALES:
                raise ValueError(
                    f"`scale` must be a positive float or one of {self.SCALES}. "
                    f"Received: scale={scale!r}"
                )
        elif not (np.isscalar(scale) and np.isfinite(scale) and scale > 0):
            raise ValueError(
                f"`scale` must be a positive float or one of {self.SCALES}. "
                f"Received: scale={scale!r}"
            )
        self.scale = scale if isinstance(scale, str) else float(scale)

    def build(self, input_shape=None):
        if isinstance(self.scale, str):
            shape = () if self.scale == "learned" else self.event_shape
            # softplus(0.5413) == 1.0: start at unit scale. Not autocast: the
            # log-probabilities stay float32 also inside a mixed-precision call.
            self.raw_scale = self.add_weight(
                name="raw_scale", shape=shape, initializer=keras.initializers.Constant(0.5413), autocast=False
            )
        self.built = True

    def stddev(self):
        if isinstance(self.scale, str):
            return tf.nn.softplus(self.raw_scale) + _MIN_SCALE
        return tf.constant(self.scale, tf.float32)

    def distribution(self, params):
        return self._independent(tfd.Normal(loc=params, scale=self.stddev()))

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


@keras.saving.register_keras_serializable(package="keras_vae")
class DiscretizedLogistic(Likelihood):
    """8-bit pixels: the probability of each integer value 0..255 under a
    logistic (or a mixture of `num_components` logistics) per element, the
    observation model of PixelCNN++ (Salimans et al. 2017) and of Kingma et
    al. 2016's CIFAR-10 VAE, each channel of a pixel modelled on its own
    given z (no linear coupling of the colour channels).

    Built from TFP: `tfd.QuantizedDistribution(tfd.Logistic(loc - 0.5, s),
    low=0, high=255)` gives value k the mass of `(k - 0.5, k + 0.5]` and the
    edge values 0 and 255 the open tails, so the 256 masses sum to 1; the
    mixture is a `tfd.MixtureSameFamily`. Per element the decoder emits
    `num_components` mixture logits (none for one component), then the
    locations `127.5 * (1 + a)` and the scales `127.5 * exp(max(b, -7))`
    (PixelCNN++'s floor on the log scale, in its [-1, 1] units). `mean()` is
    exact: `sum_k P(x > k)` over the 255 thresholds.

    Args:
        event_shape: shape of one data point, `(H, W, C)`.
        num_components: logistics per element (1: no mixture).
    """

    support = "the integers {0, ..., 255}"
    values = "8bit"

    def __init__(self, event_shape, num_components=1, **kwargs):
        super().__init__(event_shape, **kwargs)
        if isinstance(num_components, bool) or not isinstance(num_components, (int, np.integer)) \
                or num_components < 1:
            raise ValueError(f"`num_components` must be a positive integer. Received: num_components={num_components!r}")
        self.num_components = int(num_components)

    @property
    def params_per_element(self):
        k = self.num_components
        return 2 if k == 1 else 3 * k

    def distribution(self, params):
        p = self._split_params(params)
        k = self.num_components
        if k > 1:
            logits, raw_loc, raw_scale = p[..., :k], p[..., k:2 * k], p[..., 2 * k:]
        else:
            raw_loc, raw_scale = p[..., 0], p[..., 1]
        loc = 127.5 * (1.0 + raw_loc)
        scale = 127.5 * tf.exp(tf.maximum(raw_scale, -7.0))
        pixels = _QuantizedLogistic(tfd.Logistic(loc - 0.5, scale), low=0.0, high=255.0)
        if k > 1:
            pixels = tfd.MixtureSameFamily(tfd.Categorical(logits=logits), pixels)
        return self._independent(pixels)

    def support_violation(self, x):
        bad = (x < 0) | (x > 255) | (x != np.round(x))
        if bad.any():
            return (f"{int(bad.sum())} values that are not integers in [0, 255] (e.g. {x[bad].flat[0]!r}); "
                    "load 8-bit pixels with `values='8bit'`")
        return None

    def get_config(self):
        return {**super().get_config(), "num_components": self.num_components}


class _QuantizedLogistic(tfd.QuantizedDistribution):
    """`tfd.QuantizedDistribution` with the mean TFP leaves unimplemented:
    for values in {low, ..., high}, `E[x] = low + sum_{k=low}^{high-1} P(x > k)`."""

    def _mean(self):
        low, high = self.low, self.high

        def add(k, total):
            return k + 1.0, total + self.survival_function(k)

        _, total = tf.while_loop(lambda k, total: k < high, add, (low, tf.zeros(self.batch_shape_tensor())))
        return low + total


@keras.saving.register_keras_serializable(package="keras_vae")
class DequantizedGaussian(Gaussian):
    """8-bit pixels dequantized, `v = x + u` with `u ~ U[0, 1)` drawn afresh
    each time a pixel is used (`keras_vae.data` with `values="dequantized"`):
    a Gaussian on `v / 256` with its density transformed to `v`
    (`tfd.TransformedDistribution(Normal(loc, s), tfb.Scale(256))`), so its
    log-probabilities carry the `-log 256` per element that makes bits per
    dimension comparable with a discrete likelihood's (see the module doc).

    Args: as `Gaussian`, with `scale="learned_per_element"` by default.
    """

    support = "[0, 256)"
    values = "dequantized"

    def __init__(self, event_shape, scale="learned_per_element", **kwargs):
        super().__init__(event_shape, scale=scale, **kwargs)

    def distribution(self, params):
        unit = tfd.Normal(loc=params, scale=self.stddev())
        return self._independent(tfd.TransformedDistribution(unit, tfb.Scale(256.0)))

    def support_violation(self, x):
        bad = (x < 0) | (x >= 256)
        if bad.any():
            return (f"{int(bad.sum())} values outside [0, 256) (e.g. {x[bad].flat[0]!r}); load 8-bit pixels "
                    "with `values='dequantized'`")
        return None


_BY_NAME = {
    "bernoulli": lambda shape, scale: Bernoulli(shape),
    "continuous_bernoulli": lambda shape, scale: ContinuousBernoulli(shape),
    "gaussian": lambda shape, scale: Gaussian(shape, scale=scale),
    "gaussian_learned_scale": lambda shape, scale: Gaussian(shape, scale="learned"),
    "gaussian_learned_pixel_scale": lambda shape, scale: Gaussian(
        shape, scale="learned_per_element"
    ),
    "discretized_logistic": lambda shape, scale: DiscretizedLogistic(shape),
    "discretized_logistic_mixture": lambda shape, scale: DiscretizedLogistic(shape, num_components=5),
    "dequantized_gaussian": lambda shape, scale: DequantizedGaussian(shape),
}

#: Valid likelihood names.
NAMES = tuple(_BY_NAME)


def get(name, event_shape, scale=0.1):
    """Returns the likelihood layer called `name` for data of `event_shape`, built.

    Args:
        name: one of `NAMES`, or a `Likelihood` layer (returned as it is,
            built, after checking its `event_shape`).
        event_shape: shape of one data point.
        scale: the fixed standard deviation of the `gaussian` likelihood;
            ignored by the others.

    Raises:
        ValueError: for an unknown name or a layer for other data.
    """
    layer = make(name, event_shape, scale)
    if not layer.built:
        layer.build(event_shape)
    return layer


def make(name, event_shape, scale=0.1):
    """As `get`, without building the layer (no variables are made): for
    reading `params_shape` or `value_scale` before a model exists."""
    event_shape = tuple(int(d) for d in event_shape)
    if isinstance(name, Likelihood):
        if name.event_shape != event_shape:
            raise ValueError(f"`likelihood` must model data of shape {event_shape}. "
                             f"Received: a {type(name).__name__} with event_shape={name.event_shape}")
        return name
    if not isinstance(name, str) or name not in _BY_NAME:
        raise ValueError(f"`likelihood` must be one of {NAMES} or a `keras_vae.likelihoods.Likelihood`. "
                         f"Received: likelihood={name!r}")
    if name == "gaussian":  # the model's argument that sets it
        scale = validation.positive_float("likelihood_scale", scale)
    return _BY_NAME[name](event_shape, scale)
