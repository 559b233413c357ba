"""The disentanglement metrics (`keras_vae.disentanglement`): the helpers on
hand-computed cases, the metrics on a synthetic ground-truth dataset with
known good, random and entangled representations, determinism and the
errors on bad input."""

import inspect
import json
import sys

import numpy as np
import pytest

from keras_vae import disentanglement as dis

FACTOR_SIZES = (3, 6, 10, 8)
NUM_NOISE = 4


class Synthetic:
    """Four independent uniform factors; an observation holds the factor
    values as floats followed by `NUM_NOISE` standard-normal nuisance values
    drawn from the sampling `random_state` (so a code read from them is noise
    independent of the factors, yet reproducible from the seed)."""

    factor_sizes = FACTOR_SIZES
    factor_names = ("shape", "scale", "angle", "position")

    def sample_factors(self, num, random_state):
        return np.stack([random_state.randint(size, size=num) for size in self.factor_sizes], 1).astype(np.int64)

    def sample_observations_from_factors(self, factors, random_state):
        noise = random_state.normal(size=(len(factors), NUM_NOISE))
        return np.concatenate([factors, noise], 1).astype(np.float32)


class FewValues(Synthetic):
    """Fewer factor values: DCI fits a boosted-tree classifier of 100 trees per factor value, whatever the
    number of points."""

    factor_sizes = (2, 3, 4)
    factor_names = ("a", "b", "c")


DATA = Synthetic()


def oracle(x):
    """The true factors, columns shuffled and scaled (one flipped)."""
    return x[:, [2, 0, 3, 1]] * np.array([1.0, -2.0, 0.5, 3.0])


def random_codes(x):
    """Codes of noise, independent of the factors: the nuisance values."""
    return x[:, -NUM_NOISE:] * 1.0


def rotated(x):
    """Factors 0 and 1 each spread over two units (a 45-degree rotation of
    their standardised values); factors 2 and 3 kept in one unit each."""
    a, b = x[:, 0] / 2.0, x[:, 1] / 5.0
    return np.stack([a + b, a - b, x[:, 2], x[:, 3]], 1)


def one_unit_two_factors(x):
    """One unit codes factors 0 and 1 together (f0 + 3 * f1, invertible), two
    units the other factors, one unit noise."""
    return np.stack([x[:, 0] + 3 * x[:, 1], x[:, 2], x[:, 3], x[:, 4]], 1)


SMALL = {
    "beta_vae": {"num_train": 1000, "num_eval": 500},
    "factor_vae": {"num_train": 1000, "num_eval": 500, "num_variance_estimate": 2000},
    "mig": {"num_train": 2000},
    "dci": {"num_train": 500, "num_test": 300},
    "sap": {"num_train": 1000, "num_test": 500},
    "modularity_explicitness": {"num_train": 1000, "num_test": 500},
}
REPRESENTATIONS = {"oracle": oracle, "random": random_codes, "rotated": rotated, "one_unit": one_unit_two_factors}
# Chance levels on DATA: a classifier of the fixed factor (beta-VAE, FactorVAE) guesses 1 of 4; DCI's
# informativeness is the accuracy of always guessing, on average over the factors, 1 / factor size.
CHANCE_FIXED_FACTOR = 1 / len(FACTOR_SIZES)
CHANCE_FACTOR_VALUE = np.mean(1 / np.array(FACTOR_SIZES))  # 0.181


@pytest.fixture(scope="module")
def scores():
    return {name: dis.evaluate(fn, DATA, settings=SMALL) for name, fn in REPRESENTATIONS.items()}


# ----------------------------------------------------------------------------- helpers on hand-computed cases


def test_discretize_uses_equal_width_bins_over_each_columns_range():
    codes = np.array([[0.0, 5.0], [1.0, 5.0], [2.0, 5.0], [3.0, 5.0], [4.0, 5.0]])
    # 2 bins over [0, 4]: [0, 2) and [2, 4]; a constant column c gets numpy's range [c - 0.5, c + 0.5], c in bin 1
    np.testing.assert_array_equal(dis.discretize(codes, num_bins=2), [[0, 1], [0, 1], [1, 1], [1, 1], [1, 1]])
    # 4 bins of width 1: the maximum goes to the last bin, as in numpy's histogram
    bins = dis.discretize(codes, num_bins=4)
    np.testing.assert_array_equal(bins[:, 0], [0, 1, 2, 3, 3])
    assert bins.dtype == np.int64 and len(np.unique(bins[:, 1])) == 1
    x = np.random.RandomState(0).normal(size=(1000, 3))
    bins = dis.discretize(x)
    assert bins.min() == 0 and bins.max() == 19
    for j in range(3):
        np.testing.assert_array_equal(np.bincount(bins[:, j], minlength=20), np.histogram(x[:, j], 20)[0])


def test_discrete_mutual_information_and_entropy_match_hand_computed_values():
    x = np.array([0, 0, 1, 1])
    y = np.array([0, 0, 0, 1])
    z = np.array([0, 1, 0, 1])
    # p(x, y) = {(0, 0): 1/2, (1, 0): 1/4, (1, 1): 1/4}, p(x) = (1/2, 1/2), p(y) = (3/4, 1/4)
    i_xy = 0.5 * np.log(0.5 / 0.375) + 0.25 * np.log(0.25 / 0.375) + 0.25 * np.log(0.25 / 0.125)
    info = dis.discrete_mutual_info(np.stack([x, y], 1), np.stack([x, y, z], 1))
    np.testing.assert_allclose(info, [[np.log(2), i_xy, 0.0], [i_xy, dis.discrete_entropy(y[:, None])[0], i_xy]],
                               atol=1e-12)
    assert info.shape == (2, 3)
    np.testing.assert_allclose(dis.discrete_entropy(np.stack([x, [0, 1, 2, 3], y], 1)),
                               [np.log(2), np.log(4), -(0.75 * np.log(0.75) + 0.25 * np.log(0.25))])
    # labels are arbitrary values
    np.testing.assert_allclose(dis.discrete_mutual_info((x * 7 - 3)[:, None], (y + 10)[:, None]), [[i_xy]])


def test_discrete_mutual_information_agrees_with_scikit_learn():
    from sklearn.metrics import mutual_info_score

    rs = np.random.RandomState(1)
    codes, factors = rs.randint(5, size=(300, 2)), rs.randint(4, size=(300, 3))
    factors[:, 0] = codes[:, 0] % 4
    expected = [[mutual_info_score(f, c) for f in factors.T] for c in codes.T]
    np.testing.assert_allclose(dis.discrete_mutual_info(codes, factors), expected, atol=1e-12)


def test_the_mutual_information_gap_of_two_codes():
    f0 = np.array([0, 0, 1, 1] * 5)
    f1 = np.array([0, 1, 0, 1] * 5)
    factors = np.stack([f0, f1], 1)
    # each factor has its own code: the gap is the whole entropy
    assert dis.mutual_information_gap(np.stack([f0, f1], 1) * 1.0, factors) == pytest.approx(1.0)
    # both codes copy f0: no gap for f0, no information about f1
    assert dis.mutual_information_gap(np.stack([f0, f0], 1) * 1.0, factors) == pytest.approx(0.0)
    # code 0 = f0, code 1 = f0 AND f1 with I = i for both factors: gaps (log 2 - i) / log 2 and i / log 2
    both = f0 * f1
    i = dis.discrete_mutual_info(both[:, None], f1[:, None])[0, 0]
    assert 0.2 < i < 0.25
    expected = ((np.log(2) - i) / np.log(2) + i / np.log(2)) / 2
    assert dis.mutual_information_gap(np.stack([f0, both], 1) * 1.0, factors, num_bins=2) == pytest.approx(expected)
    assert expected == pytest.approx(0.5)


def test_dci_scores_of_given_importance_matrices():
    assert dis.disentanglement(np.eye(4)) == pytest.approx(1.0, abs=1e-6)
    assert dis.completeness(np.eye(4)) == pytest.approx(1.0, abs=1e-6)
    assert dis.disentanglement(np.ones((4, 3))) == pytest.approx(0.0, abs=1e-9)
    assert dis.completeness(np.ones((4, 3))) == pytest.approx(0.0, abs=1e-9)
    assert dis.disentanglement(np.zeros((3, 3))) == pytest.approx(0.0, abs=1e-9)
    # code 0 splits evenly over 2 factors (D = 0), code 1 serves one (D = 1), equal weights
    m = np.array([[1.0, 1.0], [0.0, 2.0]])
    assert dis.disentanglement(m) == pytest.approx(0.5, abs=1e-9)
    # factor 0 in one code (C = 1, weight 1/4); factor 1 in codes with shares 1/3, 2/3 (weight 3/4)
    h = -(np.log2(1 / 3) / 3 + 2 * np.log2(2 / 3) / 3)
    assert dis.completeness(m) == pytest.approx(0.25 + 0.75 * (1 - h), abs=1e-9)
    # an unused code does not lower disentanglement (it has no weight)
    assert dis.disentanglement(np.vstack([np.eye(3), np.zeros(3)])) == pytest.approx(1.0, abs=1e-6)
    # factor 0 split evenly over 2 of 3 codes (C = 1 - log 2 / log 3, weight 2/3), factor 1 in one (weight 1/3)
    m = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    assert dis.completeness(m) == pytest.approx(2 / 3 * (1 - np.log(2) / np.log(3)) + 1 / 3, abs=1e-6)
    assert dis.disentanglement(m) == pytest.approx(1.0, abs=1e-6)


def test_sap_gap_and_modularity_of_given_matrices():
    scores = np.array([[0.9, 0.2], [0.5, 0.6], [0.1, 0.3]])
    assert dis.sap_gap(scores) == pytest.approx(((0.9 - 0.5) + (0.6 - 0.3)) / 2)
    # code 0 informs one factor (1), code 1 two equally (0), code 2 none (0)
    assert dis.modularity(np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])) == pytest.approx(1 / 3)
    # squared informations (4, 1, 1): 1 - (1 + 1) / (4 * 2)
    assert dis.modularity(np.array([[2.0, 1.0, 1.0]])) == pytest.approx(0.75)


# ----------------------------------------------------------------------------- metrics on known representations


def test_the_oracle_scores_near_the_maximum_on_every_metric(scores):
    s = scores["oracle"]
    assert s["beta_vae"]["train_accuracy"] > 0.99 and s["beta_vae"]["eval_accuracy"] > 0.99
    assert s["factor_vae"]["train_accuracy"] > 0.99 and s["factor_vae"]["eval_accuracy"] > 0.99
    assert s["factor_vae"]["num_active_dims"] == 4
    assert s["mig"]["discrete_mig"] > 0.97
    assert s["dci"]["disentanglement"] > 0.97 and s["dci"]["completeness"] > 0.97
    assert s["dci"]["informativeness_train"] > 0.99 and s["dci"]["informativeness_test"] > 0.99
    assert s["modularity_explicitness"]["modularity_score"] > 0.97
    assert s["modularity_explicitness"]["explicitness_score_test"] > 0.97
    # SAP's maximum is well below 1: the gap is the best code's accuracy minus the second best's, which is at
    # least chance, and a linear classifier on one code cannot pick out the middle values of a 6- to 10-valued
    # factor. The oracle still beats noise by far.
    assert 0.2 < s["sap"]["sap_score"] < 0.8
    assert s["sap"]["sap_score"] > 10 * max(scores["random"]["sap"]["sap_score"], 0.01)


def test_random_codes_score_near_chance(scores):
    s = scores["random"]
    for metric in ("beta_vae", "factor_vae"):  # chance: 1 of 4 fixed factors
        assert abs(s[metric]["eval_accuracy"] - CHANCE_FIXED_FACTOR) < 0.06, metric
    assert s["mig"]["discrete_mig"] < 0.02  # 0 for independent codes
    assert s["dci"]["disentanglement"] < 0.1 and s["dci"]["completeness"] < 0.1  # importance spread evenly
    assert abs(s["dci"]["informativeness_test"] - CHANCE_FACTOR_VALUE) < 0.05  # guessing a factor's value
    assert s["dci"]["informativeness_train"] > 0.5  # the boosted trees overfit the noise
    assert s["sap"]["sap_score"] < 0.05  # 0: no code predicts better than another
    assert abs(s["modularity_explicitness"]["explicitness_score_test"] - 0.5) < 0.03  # ROC AUC of chance
    # Modularity is not low for noise: the bias of the plug-in mutual information grows with the number of a
    # factor's values, so each noise code's largest (spurious) information dominates the others.
    assert 0.5 < s["modularity_explicitness"]["modularity_score"] < 0.8


def test_entangled_codes_score_below_the_oracle_on_mig_and_dci_disentanglement(scores):
    oracle_scores, mixed = scores["oracle"], scores["rotated"]
    # two factors share two units: their gaps vanish, MIG about halves
    assert mixed["mig"]["discrete_mig"] < 0.7 < oracle_scores["mig"]["discrete_mig"]
    assert mixed["dci"]["disentanglement"] < oracle_scores["dci"]["disentanglement"] - 0.15
    assert mixed["dci"]["completeness"] < oracle_scores["dci"]["completeness"] - 0.15
    assert mixed["dci"]["informativeness_test"] > 0.95  # nothing is lost, only mixed


def test_one_unit_coding_two_factors_lowers_dci_disentanglement_but_not_mig(scores):
    oracle_scores, mixed = scores["oracle"], scores["one_unit"]
    # unit 0 serves factors 0 and 1 evenly: its disentanglement is 1 - log(2) / log(4) = 0.5 with half the
    # importance, so D is about 0.75; each factor is still captured by one unit, so completeness stays 1
    assert mixed["dci"]["disentanglement"] == pytest.approx(0.75, abs=0.05)
    assert mixed["dci"]["completeness"] > 0.95
    # MIG asks for each factor's best unit to stand out, not for a unit to serve one factor: 18 values in
    # 20 bins keep f0 and f1 fully readable from unit 0, with no second unit informative about them
    assert mixed["mig"]["discrete_mig"] > oracle_scores["mig"]["discrete_mig"] - 0.03
    assert mixed["modularity_explicitness"]["modularity_score"] < oracle_scores[
        "modularity_explicitness"]["modularity_score"] - 0.05
    assert mixed["factor_vae"]["eval_accuracy"] < 0.9  # one unit is the least varying for two fixed factors


def test_evaluate_returns_json_floats_for_every_metric(scores):
    result = scores["oracle"]
    assert tuple(result) == dis.METRICS
    assert set(result["dci"]) == {"disentanglement", "completeness", "informativeness_train", "informativeness_test"}
    assert set(result["modularity_explicitness"]) == {
        "modularity_score", "explicitness_score_train", "explicitness_score_test"}
    assert set(result["factor_vae"]) == {"train_accuracy", "eval_accuracy", "num_active_dims"}
    assert all(type(v) is float for r in result.values() for v in r.values())
    assert json.loads(json.dumps(result)) == result


def test_the_defaults_are_disentanglement_libs_and_mig_runs_with_them():
    def defaults(fn):
        return {k: p.default for k, p in inspect.signature(fn).parameters.items()
                if p.default is not inspect.Parameter.empty and k != "random_state"}

    assert defaults(dis.beta_vae_score) == {"batch_size": 64, "num_train": 10000, "num_eval": 5000}
    assert defaults(dis.factor_vae_score) == {"batch_size": 64, "num_train": 10000, "num_eval": 5000,
                                              "num_variance_estimate": 10000, "prune_threshold": 0.05}
    assert defaults(dis.mig) == {"num_train": 10000, "batch_size": 16, "num_bins": 20}
    for fn in (dis.dci, dis.sap):
        assert defaults(fn) == {"num_train": 10000, "num_test": 5000, "batch_size": 16}
    assert defaults(dis.modularity_explicitness) == {"num_train": 10000, "num_test": 5000, "batch_size": 16,
                                                     "num_bins": 20}
    assert dis.mig(oracle, DATA)["discrete_mig"] > 0.99
    assert dis.mig(random_codes, DATA)["discrete_mig"] < 0.005


def test_factor_vae_prunes_collapsed_codes():
    def with_collapsed(x):  # a constant code and one of standard deviation 0.01 < 0.05
        return np.concatenate([oracle(x), np.full((len(x), 1), 3.0), 0.01 * x[:, 4:5]], 1)

    s = dis.factor_vae_score(with_collapsed, DATA, num_train=300, num_eval=200, num_variance_estimate=1000)
    assert s["num_active_dims"] == 4 and s["eval_accuracy"] > 0.99
    # the threshold is on the standard deviation: 0.1 is kept although its variance, 0.01, is below 0.05
    small = dis.factor_vae_score(lambda x: np.concatenate([oracle(x), 0.1 * x[:, 4:5]], 1), DATA, num_train=50,
                                num_eval=50, num_variance_estimate=1000)
    assert small["num_active_dims"] == 5
    collapsed = dis.factor_vae_score(lambda x: 0.01 * x[:, 4:], DATA, num_train=10, num_eval=10,
                                     num_variance_estimate=1000)
    assert collapsed == {"train_accuracy": 0.0, "eval_accuracy": 0.0, "num_active_dims": 0.0}
    kept = dis.factor_vae_score(lambda x: 0.01 * x[:, 4:], DATA, num_train=10, num_eval=10,
                                num_variance_estimate=1000, prune_threshold=0.0)
    assert kept["num_active_dims"] == 4


def test_the_same_seed_gives_the_same_numbers():
    settings = {"beta_vae": {"num_train": 200, "num_eval": 100},
                "factor_vae": {"num_train": 200, "num_eval": 100, "num_variance_estimate": 500},
                "mig": {"num_train": 500}, "dci": {"num_train": 150, "num_test": 100},
                "sap": {"num_train": 300, "num_test": 200},
                "modularity_explicitness": {"num_train": 300, "num_test": 200}}
    data = FewValues()
    first = dis.evaluate(random_codes, data, seed=3, settings=settings)
    assert dis.evaluate(random_codes, data, seed=3, settings=settings) == first
    other = dis.evaluate(random_codes, data, seed=4, settings=settings)
    for name in dis.METRICS:
        assert other[name] != first[name], name
    # each metric has its own RandomState(seed): running one alone gives the same numbers
    assert dis.evaluate(random_codes, data, metrics="mig", seed=3, settings=settings) == {"mig": first["mig"]}
    assert dis.mig(random_codes, data, np.random.RandomState(3), num_train=500) == first["mig"]
    assert dis.mig(random_codes, data, 3, num_train=500) == first["mig"]


def test_representation_of_a_keras_vae_model_is_its_batched_posterior_mean():
    from keras_vae import VAE

    model = VAE(data_shape=(DATA_DIM,), latent_dim=3, hidden_units=(8,), seed=0)
    x = DATA.sample_observations_from_factors(DATA.sample_factors(7, np.random.RandomState(0)),
                                              np.random.RandomState(1))
    codes = dis.representation(model, batch_size=3)(x)
    assert codes.shape == (7, 3)
    np.testing.assert_allclose(codes, np.asarray(model.latent(x)), rtol=1e-5, atol=1e-6)
    s = dis.mig(dis.representation(model), DATA, num_train=200)
    assert 0.0 <= s["discrete_mig"] <= 1.0
    with pytest.raises(ValueError, match=r"`model` must be a keras_vae model .*Received: model='encoder'"):
        dis.representation("encoder")
    with pytest.raises(ValueError, match=r"`batch_size` must be a positive integer. Received: batch_size=0"):
        dis.representation(model, batch_size=0)


DATA_DIM = len(FACTOR_SIZES) + NUM_NOISE


# ----------------------------------------------------------------------------- errors


class NoSampler:
    factor_sizes = (2, 3)
    factor_names = ("a", "b")

    def sample_factors(self, num, random_state):
        return np.zeros((num, 2), np.int64)


class OneValue(Synthetic):
    factor_sizes = (3, 1)
    factor_names = ("a", "b")


def test_bad_inputs_raise_value_errors_naming_the_argument():
    with pytest.raises(ValueError, match=r"`num_train` must be a positive integer. Received: num_train=0"):
        dis.mig(oracle, DATA, num_train=0)
    with pytest.raises(ValueError, match=r"`num_eval` must be a positive integer. Received: num_eval=-1"):
        dis.beta_vae_score(oracle, DATA, num_eval=-1)
    with pytest.raises(ValueError, match=r"`batch_size` must be an integer >= 2. Received: batch_size=1"):
        dis.factor_vae_score(oracle, DATA, batch_size=1)
    with pytest.raises(ValueError, match=r"one row of codes per observation.*shape \(99, 4\) for 100 observations"):
        dis.mig(lambda x: oracle(x)[:-1], DATA, num_train=100)
    with pytest.raises(ValueError, match=r"one row of codes per observation.*shape \(100,\)"):
        dis.dci(lambda x: x[:, 0], DATA, num_train=100, num_test=50)
    with pytest.raises(ValueError, match=r"at least 2 codes per observation for MIG.*Received: 1 code"):
        dis.mig(lambda x: x[:, :1], DATA, num_train=100)
    with pytest.raises(ValueError, match=r"must return finite codes. Received: 200 NaN/Inf values"):
        dis.mig(lambda x: np.where(x[:, :2] >= 0, np.nan, 0.0), DATA, num_train=100)
    with pytest.raises(ValueError, match=r"`data` must follow the ground-truth protocol.*'NoSampler' object without "
                                         r"\(callable\) sample_observations_from_factors"):
        dis.mig(oracle, NoSampler())
    with pytest.raises(ValueError, match=r"`data.factor_sizes` must be a sequence of at least 2 integers >= 2.*"
                                         r"Received: data.factor_sizes=\(3, 1\)"):
        dis.sap(oracle, OneValue())
    with pytest.raises(ValueError, match=r"`num_bins` must be an integer >= 2. Received: num_bins=1"):
        dis.discretize(np.zeros((3, 2)), num_bins=1)
    with pytest.raises(ValueError, match=r"`num_bins` must be an integer >= 2. Received: num_bins=1"):
        dis.mig(oracle, DATA, num_bins=1)
    with pytest.raises(ValueError, match=r"`random_state` must be a numpy.random.RandomState.*random_state='x'"):
        dis.mig(oracle, DATA, random_state="x")
    with pytest.raises(ValueError, match=r"`num_train` must be large enough for every factor to take at least 2 "
                                         r"values.*num_train=1"):
        dis.dci(oracle, DATA, num_train=1, num_test=10)
    with pytest.raises(ValueError, match=r"`codes` and `factors` must have the same number of rows.*"
                                         r"codes.shape=\(3, 1\) and factors.shape=\(4, 1\)"):
        dis.discrete_mutual_info(np.zeros((3, 1)), np.zeros((4, 1)))
    with pytest.raises(ValueError, match=r"`importance_matrix` must hold finite values >= 0"):
        dis.disentanglement(np.array([[1.0, -1.0]]))


def test_evaluate_rejects_unknown_metrics_settings_and_seeds():
    with pytest.raises(ValueError, match=r"`metrics` must be one of \('beta_vae', 'factor_vae', 'mig', 'dci', 'sap', "
                                         r"'modularity_explicitness'\). Received: metrics='irs'"):
        dis.evaluate(oracle, DATA, metrics=["mig", "irs"])
    with pytest.raises(ValueError, match=r"`settings` keys must be metric names from .*Received: settings key 'MIG'"):
        dis.evaluate(oracle, DATA, metrics="mig", settings={"MIG": {"num_train": 10}})
    with pytest.raises(ValueError, match=r"`settings\['mig'\]` keys must be among \('num_train', 'batch_size', "
                                         r"'num_bins'\). Received: \['num_test'\]"):
        dis.evaluate(oracle, DATA, metrics="mig", settings={"mig": {"num_test": 10}})
    with pytest.raises(ValueError, match=r"`seed` must be an integer in \[0, 2147483647\]. Received: seed=-1"):
        dis.evaluate(oracle, DATA, metrics="mig", seed=-1)


def test_the_classifier_metrics_ask_for_the_optional_extra_without_scikit_learn(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)  # makes `import sklearn` fail
    for metric in (dis.beta_vae_score, dis.dci, dis.sap, dis.modularity_explicitness):
        with pytest.raises(ImportError, match=r'pip install "keras_vae\[disentanglement\]"'):
            metric(oracle, DATA)
    # the information-theoretic metrics do not need it
    assert dis.mig(oracle, DATA, num_train=500)["discrete_mig"] > 0.9
    assert dis.factor_vae_score(oracle, DATA, num_train=50, num_eval=50, num_variance_estimate=500)[
        "eval_accuracy"] > 0.9
