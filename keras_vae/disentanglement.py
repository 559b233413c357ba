"""Disentanglement metrics of a representation against a ground-truth dataset.

The definitions and default settings are those of disentanglement_lib
(Locatello et al. 2019, "Challenging Common Assumptions in the Unsupervised
Learning of Disentangled Representations"):

- `beta_vae_score` (Higgins et al. 2017), `factor_vae_score` (Kim & Mnih 2018),
- `mig`, the mutual information gap (Chen et al. 2018),
- `dci`, disentanglement / completeness / informativeness (Eastwood & Williams 2018),
- `sap`, the separated attribute predictability (Kumar et al. 2018),
- `modularity_explicitness` (Ridgeway & Mozer 2018);

`evaluate` runs several at once. Each metric returns a dict of floats.

Ground-truth data: any object `data` with

- `data.factor_sizes`: tuple of ints, the number of values of each factor of
  variation (at least 2 factors, each with at least 2 values);
- `data.factor_names`: tuple of str, one per factor;
- `data.sample_factors(num, random_state)`: an integer array `[num, num_factors]`
  of factor indices, column `j` uniform over `range(factor_sizes[j])`;
  `random_state` is a `numpy.random.RandomState`;
- `data.sample_observations_from_factors(factors, random_state)`: a float32
  array `[num, *observation_shape]`, one observation per row of `factors`.

A representation function maps a batch of observations (numpy) to codes,
a numpy array `[num, num_codes]`; `representation(model)` makes one from a
keras_vae model (the posterior mean). It is called on at most 1024
observations at a time.

    codes_of = disentanglement.representation(model)
    scores = disentanglement.evaluate(codes_of, data, settings={"dci": {"num_train": 2000}})

Arrays of codes and factors in the lower-level helpers (`discretize`,
`discrete_mutual_info`, `discrete_entropy`, `mutual_information_gap`) are
`[num_points, num_dims]`; mutual-information and importance matrices are
`[num_codes, num_factors]`. Information is in nats. The classifiers come from
scikit-learn: `pip install "keras_vae[disentanglement]"`.
"""

import inspect
import numbers

import numpy as np

from keras_vae import validation

#: Names of the metrics `evaluate` runs, in its order.
METRICS = ("beta_vae", "factor_vae", "mig", "dci", "sap", "modularity_explicitness")

#: Most observations handed to a representation function in one call.
CALL_SIZE = 1024


# ----------------------------------------------------------------------------- checks


def _require_sklearn():
    try:
        import sklearn  # noqa: F401
    except ImportError:
        raise ImportError(
            'The disentanglement metrics need scikit-learn: pip install "keras_vae[disentanglement]"'
        ) from None


def _random_state(random_state):
    """A `numpy.random.RandomState`: `random_state` itself, or one seeded with
    the integer `random_state` (0 for None)."""
    if isinstance(random_state, np.random.RandomState):
        return random_state
    if random_state is None:
        return np.random.RandomState(0)
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        return np.random.RandomState(validation.seed("random_state", random_state))
    raise ValueError(
        "`random_state` must be a numpy.random.RandomState, an integer seed or None. "
        f"Received: random_state={random_state!r}"
    )


def _matrix(name, value, rows_name="rows"):
    """`value` as a 2-D array with at least one row and one column."""
    arr = np.asarray(value)
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"`{name}` must be a 2-D array [{rows_name}, columns] with at least one row and column. "
                         f"Received: {name}.shape={arr.shape}")
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"`{name}` must be a numeric array. Received: {name}.dtype={arr.dtype}")
    return arr


def _same_rows(names, arrays):
    if arrays[0].shape[0] != arrays[1].shape[0]:
        raise ValueError(f"`{names[0]}` and `{names[1]}` must have the same number of rows (points). "
                         f"Received: {names[0]}.shape={arrays[0].shape} and {names[1]}.shape={arrays[1].shape}")


def _num_bins(num_bins):
    if isinstance(num_bins, bool) or not isinstance(num_bins, numbers.Integral) or num_bins < 2:
        raise ValueError(f"`num_bins` must be an integer >= 2. Received: num_bins={num_bins!r}")
    return int(num_bins)


def _at_least(name, value, low):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"`{name}` must be an integer >= {low}. Received: {name}={value!r}")
    return int(value)


class _GroundTruth:
    """Checks `data` against the ground-truth protocol and each array it returns."""

    _PROTOCOL = ("factor_sizes", "factor_names", "sample_factors", "sample_observations_from_factors")

    def __init__(self, data):
        missing = [a for a in self._PROTOCOL if not hasattr(data, a)]
        missing += [a for a in self._PROTOCOL[2:] if a not in missing and not callable(getattr(data, a))]
        if missing:
            raise ValueError(
                f"`data` must follow the ground-truth protocol: attributes {self._PROTOCOL[:2]} and methods "
                f"{self._PROTOCOL[2:]}. Received: data={type(data).__name__!r} object without (callable) "
                f"{', '.join(missing)}"
            )
        sizes = data.factor_sizes
        try:
            ok = len(sizes) >= 2 and all(
                isinstance(s, numbers.Integral) and not isinstance(s, bool) and s >= 2 for s in sizes)
        except TypeError:
            ok = False
        if not ok:
            raise ValueError("`data.factor_sizes` must be a sequence of at least 2 integers >= 2 (values per "
                             f"factor). Received: data.factor_sizes={sizes!r}")
        names = data.factor_names
        if isinstance(names, str) or not hasattr(names, "__len__") or len(names) != len(sizes):
            raise ValueError(f"`data.factor_names` must name each of the {len(sizes)} factors. "
                             f"Received: data.factor_names={names!r}")
        self.data = data
        self.factor_sizes = np.array([int(s) for s in sizes])
        self.num_factors = len(sizes)

    def sample_factors(self, num, random_state):
        factors = np.asarray(self.data.sample_factors(num, random_state))
        if factors.shape != (num, self.num_factors) or factors.dtype.kind not in "iu":
            raise ValueError(
                f"`data.sample_factors` must return an integer array of shape ({num}, {self.num_factors}). "
                f"Received: data.sample_factors({num}, random_state) of shape {factors.shape}, dtype {factors.dtype}"
            )
        if (factors < 0).any() or (factors >= self.factor_sizes).any():
            raise ValueError(
                f"`data.sample_factors` must return indices in [0, factor_sizes[j]) in column j "
                f"(factor_sizes={tuple(self.factor_sizes.tolist())}). Received: values in "
                f"[{factors.min()}, {factors.max()}]"
            )
        return factors.astype(np.int64)

    def observations(self, factors, random_state):
        x = np.asarray(self.data.sample_observations_from_factors(factors, random_state))
        if x.ndim < 1 or x.shape[0] != len(factors):
            raise ValueError(
                "`data.sample_observations_from_factors` must return one observation per row of `factors`. "
                f"Received: an array of shape {x.shape} for {len(factors)} rows of factors"
            )
        return x

    def sample(self, num, random_state):
        factors = self.sample_factors(num, random_state)
        return factors, self.observations(factors, random_state)


class _Encoder:
    """Calls a representation function on at most `CALL_SIZE` observations at a
    time and checks that its codes are `[num, num_codes]`, finite, and have the
    same `num_codes` on every call."""

    def __init__(self, representation_function, min_codes=1, metric=None):
        if not callable(representation_function):
            raise ValueError("`representation_function` must be callable (observations -> codes). "
                             f"Received: representation_function={representation_function!r}")
        self.function, self.min_codes, self.metric, self.num_codes = representation_function, min_codes, metric, None

    def __call__(self, x):
        return np.concatenate([self._call(x[i:i + CALL_SIZE]) for i in range(0, len(x), CALL_SIZE)])

    def _call(self, x):
        codes = np.asarray(self.function(x))
        if codes.ndim != 2 or codes.shape[0] != len(x):
            raise ValueError(
                "`representation_function` must return one row of codes per observation, an array "
                f"[num, num_codes]. Received: an array of shape {codes.shape} for {len(x)} observations"
            )
        if codes.dtype.kind not in "biuf":
            raise ValueError(f"`representation_function` must return numeric codes. Received: dtype {codes.dtype}")
        if self.num_codes is None:
            if codes.shape[1] < self.min_codes:
                raise ValueError(
                    f"`representation_function` must return at least {self.min_codes} codes per observation for "
                    f"{self.metric}. Received: {codes.shape[1]} code(s)"
                )
            self.num_codes = codes.shape[1]
        elif codes.shape[1] != self.num_codes:
            raise ValueError(
                "`representation_function` must return the same number of codes on every call. "
                f"Received: {self.num_codes} codes, then {codes.shape[1]}"
            )
        codes = codes.astype(np.float64)
        if not np.isfinite(codes).all():
            raise ValueError(f"`representation_function` must return finite codes. Received: "
                             f"{int(np.sum(~np.isfinite(codes)))} NaN/Inf values")
        return codes


def _encoded(encoder, items):
    """`(key, codes of x)` for each `(key, x)` of the iterable `items`, in order.
    Consecutive observation batches are encoded together, up to `CALL_SIZE`
    rows; `items` is consumed lazily, so the random draws that make them keep
    their order."""
    def encode(keys, batches):
        codes = encoder(np.concatenate(batches))
        return zip(keys, np.split(codes, np.cumsum([len(b) for b in batches])[:-1]))

    keys, batches, rows = [], [], 0
    for key, x in items:
        if batches and rows + len(x) > CALL_SIZE:
            yield from encode(keys, batches)
            keys, batches, rows = [], [], 0
        keys.append(key)
        batches.append(x)
        rows += len(x)
    if batches:
        yield from encode(keys, batches)


def _factor_codes(encoder, data, num, batch_size, random_state):
    """`(codes [num, num_codes], factors [num, num_factors])` of `num` points
    sampled `batch_size` at a time."""
    def items():
        for start in range(0, num, batch_size):
            factors, x = data.sample(min(batch_size, num - start), random_state)
            yield factors, x

    factors, codes = zip(*_encoded(encoder, items()))
    return np.concatenate(codes), np.concatenate(factors)


def _check_varied(name, value, factors):
    """Every factor takes at least 2 values among the sampled points."""
    if any(len(np.unique(column)) < 2 for column in factors.T):
        raise ValueError(f"`{name}` must be large enough for every factor to take at least 2 values among the "
                         f"sampled points. Received: {name}={value}")


# ----------------------------------------------------------------------------- discrete information


def discretize(codes, num_bins=20):
    """Bins each column of `codes` `[num_points, num_codes]` into `num_bins`
    equal-width bins spanning its range (numpy's histogram bins) and returns
    the bin indices, int64 in `[0, num_bins)`; the maximum falls in the last
    bin. disentanglement_lib's histogram discretizer, its labels shifted by 1."""
    codes = _matrix("codes", codes, "num_points")
    num_bins = _num_bins(num_bins)
    if not np.isfinite(codes).all():
        raise ValueError("`codes` must be finite. Received: codes with NaN/Inf values")
    out = np.empty(codes.shape, np.int64)
    for j, column in enumerate(codes.T.astype(np.float64)):
        left_edges = np.histogram_bin_edges(column, num_bins)[:-1]
        out[:, j] = np.digitize(column, left_edges) - 1
    return out


def _labels(column):
    return np.unique(column, return_inverse=True)[1].ravel()


def _mutual_info(a, b):
    """Mutual information (nats) of two label vectors, from their joint histogram."""
    a, b = _labels(a), _labels(b)
    joint = np.bincount(a * (b.max() + 1) + b, minlength=(a.max() + 1) * (b.max() + 1))
    joint = joint.reshape(a.max() + 1, b.max() + 1) / len(a)
    outer = joint.sum(1, keepdims=True) * joint.sum(0, keepdims=True)
    nz = joint > 0
    return max(float(np.sum(joint[nz] * np.log(joint[nz] / outer[nz]))), 0.0)


def discrete_mutual_info(codes, factors):
    """`[num_codes, num_factors]` mutual information (nats) between each column
    of discrete `codes` `[num_points, num_codes]` (e.g. `discretize(codes)`) and
    each column of `factors` `[num_points, num_factors]`, from their empirical
    joint distribution."""
    codes, factors = _matrix("codes", codes, "num_points"), _matrix("factors", factors, "num_points")
    _same_rows(("codes", "factors"), (codes, factors))
    return np.array([[_mutual_info(c, f) for f in factors.T] for c in codes.T])


def discrete_entropy(factors):
    """`[num_factors]` empirical entropy (nats) of each column of discrete
    `factors` `[num_points, num_factors]`."""
    factors = _matrix("factors", factors, "num_points")
    out = []
    for column in factors.T:
        p = np.bincount(_labels(column)) / len(column)
        out.append(float(-np.sum(p * np.log(p))))
    return np.array(out)


def mutual_information_gap(codes, factors, num_bins=20):
    """The MIG of continuous `codes` `[num_points, num_codes]` (at least 2) for
    discrete `factors` `[num_points, num_factors]`: the codes are discretised
    (`discretize`) and, per factor, the mutual information of its most
    informative code minus that of the second, divided by the factor's
    entropy, is averaged over the factors."""
    codes, factors = _matrix("codes", codes, "num_points"), _matrix("factors", factors, "num_points")
    if codes.shape[1] < 2:
        raise ValueError(f"`codes` must have at least 2 columns for a gap between the two most informative "
                         f"codes. Received: codes.shape={codes.shape}")
    info = discrete_mutual_info(discretize(codes, num_bins), factors)
    entropy = discrete_entropy(factors)
    if (entropy == 0).any():
        raise ValueError("`factors` must vary: each column must take at least 2 values. Received: constant "
                         f"column(s) {np.flatnonzero(entropy == 0).tolist()}")
    top = np.sort(info, axis=0)[::-1]
    return float(np.mean((top[0] - top[1]) / entropy))


# ----------------------------------------------------------------------------- score-matrix helpers


def _importance(importance_matrix):
    matrix = _matrix("importance_matrix", importance_matrix, "num_codes").astype(np.float64)
    if not np.isfinite(matrix).all() or (matrix < 0).any():
        raise ValueError("`importance_matrix` must hold finite values >= 0. Received: values in "
                         f"[{np.nanmin(matrix)}, {np.nanmax(matrix)}]")
    return matrix


def _one_minus_entropy(rows):
    """1 - the entropy of each row of non-negative weights, normalised to a
    distribution, in base `rows.shape[1]` (1 for a single column)."""
    if rows.shape[1] == 1:
        return np.ones(rows.shape[0])
    p = rows + 1e-11
    p = p / p.sum(axis=1, keepdims=True)
    return 1.0 + np.sum(p * np.log(p), axis=1) / np.log(rows.shape[1])


def _weighted(per_row, rows):
    weight = rows.sum(axis=1)
    weight = np.ones_like(weight) if weight.sum() == 0 else weight
    return float(np.sum(per_row * weight / weight.sum()))


def disentanglement(importance_matrix):
    """DCI disentanglement of an importance matrix `[num_codes, num_factors]`
    (non-negative): 1 - the entropy (base num_factors) of each code's
    importance over the factors, averaged with weights the codes' shares of
    the total importance. 1 when each code matters to one factor, 0 when
    every code matters equally to all."""
    matrix = _importance(importance_matrix)
    return _weighted(_one_minus_entropy(matrix), matrix)


def completeness(importance_matrix):
    """DCI completeness of an importance matrix `[num_codes, num_factors]`:
    `disentanglement` with codes and factors exchanged (1 when each factor is
    captured by one code)."""
    matrix = _importance(importance_matrix).T
    return _weighted(_one_minus_entropy(matrix), matrix)


def sap_gap(score_matrix):
    """SAP of a score matrix `[num_codes, num_factors]` (at least 2 codes): per
    factor, the best code's score minus the second best's, averaged."""
    matrix = _matrix("score_matrix", score_matrix, "num_codes").astype(np.float64)
    if matrix.shape[0] < 2:
        raise ValueError(f"`score_matrix` must have at least 2 rows (codes). Received: score_matrix.shape="
                         f"{matrix.shape}")
    top = np.sort(matrix, axis=0)[::-1]
    return float(np.mean(top[0] - top[1]))


def modularity(mutual_information):
    """Modularity of a mutual-information matrix `[num_codes, num_factors]`:
    per code, 1 - (sum of its squared mutual informations except the largest)
    / (the largest * (num_factors - 1)), 0 for a code with no information;
    averaged over the codes. 1 when each code informs about one factor."""
    matrix = _matrix("mutual_information", mutual_information, "num_codes").astype(np.float64)
    squared = matrix**2
    top = squared.max(axis=1)
    rest = squared.sum(axis=1) - top
    spread = max(matrix.shape[1] - 1, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        score = np.where(top > 0, 1.0 - rest / (top * spread), 0.0)
    return float(np.mean(score))


# ----------------------------------------------------------------------------- metrics


def beta_vae_score(representation_function, data, random_state=None, batch_size=64, num_train=10000,
                   num_eval=5000):
    """The beta-VAE metric (Higgins et al. 2017).

    A point: a factor `k` drawn uniformly, `batch_size` pairs of factor
    vectors sharing factor `k` (the rest independent), and the mean absolute
    difference of the pairs' codes; labelled `k`. A logistic regression
    (scikit-learn's defaults) is fitted on `num_train` points and scored on
    `num_eval` new ones. Chance is about 1 / num_factors.

    Returns `{"train_accuracy", "eval_accuracy"}`.
    """
    _require_sklearn()
    from sklearn.linear_model import LogisticRegression

    data = _GroundTruth(data)
    encoder = _Encoder(representation_function)
    rs = _random_state(random_state)
    batch_size = validation.positive_int("batch_size", batch_size)
    num_train = validation.positive_int("num_train", num_train)
    num_eval = validation.positive_int("num_eval", num_eval)

    def points(num):
        def items():
            for _ in range(num):
                k = rs.randint(data.num_factors)
                first = data.sample_factors(batch_size, rs)
                second = data.sample_factors(batch_size, rs)
                second[:, k] = first[:, k]
                x = np.concatenate([data.observations(first, rs), data.observations(second, rs)])
                yield k, x

        labels, features = [], []
        for k, codes in _encoded(encoder, items()):
            labels.append(k)
            features.append(np.mean(np.abs(codes[:batch_size] - codes[batch_size:]), axis=0))
        return np.array(features), np.array(labels)

    train_x, train_y = points(num_train)
    if len(np.unique(train_y)) < 2:
        raise ValueError("`num_train` must be large enough for the training points to fix at least 2 different "
                         f"factors. Received: num_train={num_train}")
    model = LogisticRegression(random_state=rs).fit(train_x, train_y)
    eval_x, eval_y = points(num_eval)
    return {"train_accuracy": float(np.mean(model.predict(train_x) == train_y)),
            "eval_accuracy": float(np.mean(model.predict(eval_x) == eval_y))}


def factor_vae_score(representation_function, data, random_state=None, batch_size=64, num_train=10000,
                     num_eval=5000, num_variance_estimate=10000, prune_threshold=0.05):
    """The FactorVAE metric (Kim & Mnih 2018).

    Codes are divided by their standard deviation over `num_variance_estimate`
    observations; codes whose standard deviation is below `prune_threshold`
    are dropped (collapsed to the prior). A point: a factor `k` drawn
    uniformly, held fixed over `batch_size` factor vectors (the rest drawn
    anew); its vote goes to the kept code of least normalised variance over
    the batch. Each code is classified as the factor with most of its
    `num_train` votes; accuracies are the shares of votes matching that
    classification, on the training votes and on `num_eval` new ones. Chance
    is about 1 / num_factors. With no kept code, all scores are 0.

    Returns `{"train_accuracy", "eval_accuracy", "num_active_dims"}`.
    """
    data = _GroundTruth(data)
    encoder = _Encoder(representation_function)
    rs = _random_state(random_state)
    batch_size = _at_least("batch_size", batch_size, 2)
    num_train = validation.positive_int("num_train", num_train)
    num_eval = validation.positive_int("num_eval", num_eval)
    num_variance_estimate = _at_least("num_variance_estimate", num_variance_estimate, 2)
    prune_threshold = validation.non_negative_float("prune_threshold", prune_threshold)

    _, x = data.sample(num_variance_estimate, rs)
    global_variance = np.var(encoder(x), axis=0, ddof=1)
    del x
    active = np.flatnonzero(np.sqrt(global_variance) >= prune_threshold)
    if active.size == 0:
        return {"train_accuracy": 0.0, "eval_accuracy": 0.0, "num_active_dims": 0.0}

    def votes(num):
        def items():
            for _ in range(num):
                k = rs.randint(data.num_factors)
                factors = data.sample_factors(batch_size, rs)
                factors[:, k] = factors[0, k]
                yield k, data.observations(factors, rs)

        counts = np.zeros((data.num_factors, active.size), np.int64)
        for k, codes in _encoded(encoder, items()):
            local_variance = np.var(codes[:, active], axis=0, ddof=1)
            counts[k, np.argmin(local_variance / global_variance[active])] += 1
        return counts

    train_votes = votes(num_train)
    classes = np.argmax(train_votes, axis=0)
    columns = np.arange(active.size)
    eval_votes = votes(num_eval)
    return {"train_accuracy": float(train_votes[classes, columns].sum() / train_votes.sum()),
            "eval_accuracy": float(eval_votes[classes, columns].sum() / eval_votes.sum()),
            "num_active_dims": float(active.size)}


def mig(representation_function, data, random_state=None, num_train=10000, batch_size=16, num_bins=20):
    """The mutual information gap (Chen et al. 2018) of the codes of
    `num_train` sampled points, each code discretised into `num_bins`
    histogram bins (`mutual_information_gap`). Between 0 and 1; about 0 for
    codes independent of the factors.

    Returns `{"discrete_mig"}`.
    """
    data = _GroundTruth(data)
    encoder = _Encoder(representation_function, min_codes=2, metric="MIG (the gap between the two best codes)")
    rs = _random_state(random_state)
    num_train = validation.positive_int("num_train", num_train)
    batch_size = validation.positive_int("batch_size", batch_size)
    num_bins = _num_bins(num_bins)
    codes, factors = _factor_codes(encoder, data, num_train, batch_size, rs)
    _check_varied("num_train", num_train, factors)
    return {"discrete_mig": mutual_information_gap(codes, factors, num_bins)}


def _train_and_test(representation_function, data, random_state, num_train, num_test, batch_size, **encoder_args):
    """`(data, random_state, (train codes, factors), (test codes, factors))`:
    the checked arguments, then the codes of `num_train` and of `num_test`
    sampled points (the training factors checked to vary)."""
    data = _GroundTruth(data)
    encoder = _Encoder(representation_function, **encoder_args)
    rs = _random_state(random_state)
    num_train = validation.positive_int("num_train", num_train)
    num_test = validation.positive_int("num_test", num_test)
    batch_size = validation.positive_int("batch_size", batch_size)
    train = _factor_codes(encoder, data, num_train, batch_size, rs)
    test = _factor_codes(encoder, data, num_test, batch_size, rs)
    _check_varied("num_train", num_train, train[1])
    return data, rs, train, test


def dci(representation_function, data, random_state=None, num_train=10000, num_test=5000, batch_size=16):
    """Disentanglement, completeness and informativeness (Eastwood & Williams
    2018). For each factor a gradient-boosted tree classifier (scikit-learn's
    defaults) predicts it from the codes of `num_train` points; the absolute
    feature importances make the importance matrix (`disentanglement`,
    `completeness`); informativeness is the classifiers' mean accuracy on the
    training points and on `num_test` new ones.

    Returns `{"disentanglement", "completeness", "informativeness_train",
    "informativeness_test"}`.
    """
    _require_sklearn()
    from sklearn.ensemble import GradientBoostingClassifier

    data, rs, (train_codes, train_factors), (test_codes, test_factors) = _train_and_test(
        representation_function, data, random_state, num_train, num_test, batch_size)
    importance = np.zeros((train_codes.shape[1], data.num_factors))
    train_accuracy, test_accuracy = [], []
    for j in range(data.num_factors):
        model = GradientBoostingClassifier(random_state=rs).fit(train_codes, train_factors[:, j])
        importance[:, j] = np.abs(model.feature_importances_)
        train_accuracy.append(np.mean(model.predict(train_codes) == train_factors[:, j]))
        test_accuracy.append(np.mean(model.predict(test_codes) == test_factors[:, j]))
    return {"disentanglement": disentanglement(importance), "completeness": completeness(importance),
            "informativeness_train": float(np.mean(train_accuracy)),
            "informativeness_test": float(np.mean(test_accuracy))}


def sap(representation_function, data, random_state=None, num_train=10000, num_test=5000, batch_size=16):
    """The separated attribute predictability (Kumar et al. 2018), factors
    taken as discrete: the score of code `i` for factor `j` is the accuracy on
    `num_test` points of a linear SVM (C=0.01, balanced class weights) fitted
    on `num_train` points to predict factor `j` from code `i` alone; SAP is
    `sap_gap` of those scores. About 0 for codes independent of the factors.

    Returns `{"sap_score"}`.
    """
    _require_sklearn()
    from sklearn.svm import LinearSVC

    data, rs, (train_codes, train_factors), (test_codes, test_factors) = _train_and_test(
        representation_function, data, random_state, num_train, num_test, batch_size,
        min_codes=2, metric="SAP (the gap between the two best codes)")
    scores = np.zeros((train_codes.shape[1], data.num_factors))
    for i in range(train_codes.shape[1]):
        for j in range(data.num_factors):
            model = LinearSVC(C=0.01, class_weight="balanced", random_state=rs)
            model.fit(train_codes[:, i:i + 1], train_factors[:, j])
            scores[i, j] = np.mean(model.predict(test_codes[:, i:i + 1]) == test_factors[:, j])
    return {"sap_score": sap_gap(scores)}


def _explicitness(model, codes, labels):
    """Mean one-vs-rest ROC AUC of `model`'s class probabilities, over the
    classes both present and absent among `labels`."""
    from sklearn.metrics import roc_auc_score

    proba = model.predict_proba(codes)
    onehot = labels[:, None] == model.classes_[None, :]
    present = [c for c in range(onehot.shape[1]) if 0 < onehot[:, c].sum() < len(labels)]
    return float(np.mean([roc_auc_score(onehot[:, c], proba[:, c]) for c in present]))


def modularity_explicitness(representation_function, data, random_state=None, num_train=10000, num_test=5000,
                            batch_size=16, num_bins=20):
    """Modularity and explicitness (Ridgeway & Mozer 2018).

    Modularity: `modularity` of the mutual information between the codes of
    `num_train` points, discretised into `num_bins` bins, and the factors.
    Explicitness: per factor, a logistic regression (scikit-learn's defaults)
    on the standardised codes predicts the factor; its mean one-vs-rest ROC
    AUC over the factor's values, averaged over the factors, on the training
    points and on `num_test` new ones (0.5 is chance).

    Returns `{"modularity_score", "explicitness_score_train",
    "explicitness_score_test"}`.
    """
    _require_sklearn()
    from sklearn.linear_model import LogisticRegression

    num_bins = _num_bins(num_bins)
    data, rs, (train_codes, train_factors), (test_codes, test_factors) = _train_and_test(
        representation_function, data, random_state, num_train, num_test, batch_size)
    _check_varied("num_test", num_test, test_factors)
    scores = {"modularity_score": modularity(discrete_mutual_info(discretize(train_codes, num_bins), train_factors))}
    mean, std = train_codes.mean(axis=0), train_codes.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    train_codes, test_codes = (train_codes - mean) / std, (test_codes - mean) / std
    train, test = [], []
    for j in range(data.num_factors):
        model = LogisticRegression().fit(train_codes, train_factors[:, j])
        train.append(_explicitness(model, train_codes, train_factors[:, j]))
        test.append(_explicitness(model, test_codes, test_factors[:, j]))
    scores["explicitness_score_train"] = float(np.mean(train))
    scores["explicitness_score_test"] = float(np.mean(test))
    return scores


_FUNCTIONS = dict(zip(METRICS, (beta_vae_score, factor_vae_score, mig, dci, sap, modularity_explicitness)))


def settings_of(name):
    """Keyword settings a metric accepts."""
    skip = ("representation_function", "data", "random_state")
    return tuple(p for p in inspect.signature(_FUNCTIONS[name]).parameters if p not in skip)


def sized_settings(metrics, num_train=None, num_test=None):
    """`evaluate`'s `settings` giving each of `metrics` `num_train`
    training points and `num_test` test points (the setting `num_eval` of
    the beta-VAE and FactorVAE scores); `None` keeps a metric's default,
    and the other settings keep theirs. Metrics with nothing set are left
    out."""
    settings = {}
    for name in metrics:
        accepted = settings_of(validation.choice("metrics", name, METRICS))
        chosen = {key: value for key, value in (("num_train", num_train), ("num_test", num_test),
                                                ("num_eval", num_test)) if value is not None and key in accepted}
        if chosen:
            settings[name] = chosen
    return settings


def evaluate(representation_function, data, metrics=None, seed=0, settings=None):
    """Runs `metrics` (names from `METRICS`, a name or a sequence; all by
    default), each with its own `numpy.random.RandomState(seed)`.

    `settings` maps a metric name to keyword settings of its function, e.g.
    `{"dci": {"num_train": 2000, "num_test": 1000}}`; the rest keep their
    defaults (those of disentanglement_lib).

    Returns `{metric_name: {score_name: float}}` (JSON-serialisable).
    """
    if metrics is None:
        metrics = METRICS
    elif isinstance(metrics, str):
        metrics = (metrics,)
    try:
        metrics = tuple(metrics)
    except TypeError:
        raise ValueError(f"`metrics` must be a metric name or a sequence of names from {METRICS}. "
                         f"Received: metrics={metrics!r}") from None
    for name in metrics:
        validation.choice("metrics", name, METRICS)
    metrics = tuple(dict.fromkeys(metrics))
    seed = validation.seed("seed", seed)
    settings = {} if settings is None else settings
    if not isinstance(settings, dict):
        raise ValueError("`settings` must be a dict {metric_name: {setting: value}}. "
                         f"Received: settings={settings!r}")
    for name, values in settings.items():
        if name not in METRICS:
            raise ValueError(f"`settings` keys must be metric names from {METRICS}. Received: settings key {name!r}")
        if not isinstance(values, dict):
            raise ValueError(f"`settings[{name!r}]` must be a dict of keyword settings. "
                             f"Received: settings[{name!r}]={values!r}")
        unknown = sorted(set(values) - set(settings_of(name)))
        if unknown:
            raise ValueError(f"`settings[{name!r}]` keys must be among {settings_of(name)}. "
                             f"Received: {unknown}")
    data = _GroundTruth(data).data
    return {name: {key: float(value) for key, value in _FUNCTIONS[name](
        representation_function, data, random_state=np.random.RandomState(seed), **settings.get(name, {})).items()}
        for name in metrics}


def representation(model, batch_size=256):
    """The representation function of a keras_vae model: its deterministic
    latent `model.latent(x)` (the posterior mean), computed `batch_size`
    observations at a time, flattened to `[num, num_codes]` float32."""
    import tensorflow as tf

    if not callable(getattr(model, "latent", None)):
        raise ValueError(f"`model` must be a keras_vae model (with a `latent` method). Received: model={model!r}")
    batch_size = validation.positive_int("batch_size", batch_size)

    def representation_function(x):
        x = np.asarray(x, np.float32)
        codes = [np.asarray(model.latent(tf.convert_to_tensor(x[i:i + batch_size], tf.float32)), np.float32)
                 for i in range(0, len(x), batch_size)]
        return np.concatenate([c.reshape(len(c), -1) for c in codes]) if codes else np.zeros((0, 0), np.float32)

    return representation_function
