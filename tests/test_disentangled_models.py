"""The disentanglement family (`BetaTCVAE`, `FactorVAE`, `DIPVAE`) on the
shared model checks, and their penalties against numpy references: the
total-correlation decomposition, the DIP covariance, FactorVAE's
discriminator and its second optimizer."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from model_test_case import ModelTests
from scipy.special import logsumexp
from scipy.stats import norm

from keras_vae import DIPVAE, VAE, BetaTCVAE, BetaVAE, ConvVAE, FactorVAE, cli, penalties, sprites

#: Small networks on 28x28 MNIST (the family's default is the 64x64 dSprites architecture).
SMALL = {"data_shape": (28, 28, 1), "latent_dim": 4, "network": "conv", "filters": (8, 16), "kernel_size": 3}


class TestBetaTCVAE(ModelTests):
    model_class = BetaTCVAE
    init_kwargs = {**SMALL, "dataset_size": 60000, "beta": 6.0}
    bad_constructor_args = ModelTests.bad_constructor_args + [({"dataset_size": 0}, "dataset_size"),
                                                             ({"estimator": "exact"}, "estimator")]


def test_the_stratified_estimator_on_two_replicas_matches_one_device(mnist_binary, two_replicas):
    case = TestBetaTCVAE()
    case.init_kwargs = {**TestBetaTCVAE.init_kwargs, "estimator": "mss"}
    case.test_two_replicas_match_one_device(mnist_binary[:32], two_replicas)


class TestFactorVAE(ModelTests):
    model_class = FactorVAE
    init_kwargs = {**SMALL, "gamma": 10.0, "hidden_units": (32, 32)}
    bad_constructor_args = ModelTests.bad_constructor_args + [({"gamma": -1.0}, "gamma")]


class TestDIPVAE(ModelTests):
    model_class = DIPVAE
    init_kwargs = {**SMALL, "variant": "ii", "lambda_od": 5.0}
    bad_constructor_args = ModelTests.bad_constructor_args + [({"variant": "iii"}, "variant"),
                                                             ({"lambda_od": -1.0}, "lambda_od")]


def gaussian_batch(seed=0, batch=12, dim=3):
    rng = np.random.default_rng(seed)
    loc = rng.normal(size=(batch, dim))
    scale = rng.uniform(0.3, 1.5, size=(batch, dim))
    z = loc + scale * rng.normal(size=(batch, dim))
    return z, loc, scale


def reference_decomposition(z, loc, scale, dataset_size, stratified):
    """MI, TC and dimension-wise KL by explicit loops over the batch."""
    batch, dim = z.shape
    m = batch - 1
    mi = tc = dkl = 0.0
    for i in range(batch):
        if stratified:
            weights = np.full(batch, 1.0 / m)
            weights[i] = 1.0 / dataset_size
            weights[(i + 1) % batch] = (dataset_size - m) / (dataset_size * m)
        else:
            weights = np.full(batch, 1.0 / (dataset_size * batch))
        dens = norm.logpdf(z[i][None, :], loc, scale)  # [j, d]
        log_q_x = norm.logpdf(z[i], loc[i], scale[i]).sum()
        log_q = logsumexp(dens.sum(1), b=weights)
        log_marg = sum(logsumexp(dens[:, d], b=weights) for d in range(dim))
        log_p = norm.logpdf(z[i]).sum()
        mi += log_q_x - log_q
        tc += log_q - log_marg
        dkl += log_marg - log_p
    return mi / batch, tc / batch, dkl / batch


@pytest.mark.parametrize("estimator", ["mws", "mss"])
def test_the_total_correlation_decomposition_matches_a_loop_and_sums_to_the_kl(estimator):
    z, loc, scale = gaussian_batch()
    layer = penalties.TotalCorrelation(dataset_size=1000, estimator=estimator)
    log_p = norm.logpdf(z).sum(1)
    got = [float(v) for v in layer.decompose(tf.constant(z, tf.float32), tf.constant(loc, tf.float32),
                                             tf.constant(scale, tf.float32), tf.constant(log_p, tf.float32))]
    expected = reference_decomposition(z, loc, scale, 1000, estimator == "mss")
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    mc_kl = np.mean(norm.logpdf(z, loc, scale).sum(1) - log_p)
    assert sum(got) == pytest.approx(mc_kl, abs=1e-4)
    weights = np.exp(penalties.stratified_log_weights(12, 1000).numpy())
    np.testing.assert_allclose(weights.sum(1), 1.0, rtol=1e-6)


def test_the_total_correlation_estimate_matches_a_gaussian_closed_form():
    # Means u (independent dimensions, or one value copied to all three) and
    # posteriors N(u, 0.3^2): the aggregate posterior is the Gaussian
    # N(0, C + 0.09 I), whose TC is (sum_d log var_d - log det) / 2.
    rng = np.random.default_rng(1)
    layer = penalties.TotalCorrelation(dataset_size=512, estimator="mss")
    scale = np.full((512, 3), 0.3)
    independent = rng.normal(size=(512, 3))
    copied = np.repeat(rng.normal(size=(512, 1)), 3, axis=1)
    tcs = []
    for loc in (independent, copied):
        z = loc + scale * rng.normal(size=loc.shape)
        _, tc, _ = layer.decompose(*(tf.constant(a, tf.float32) for a in (z, loc, scale)),
                                   tf.constant(norm.logpdf(z).sum(1), tf.float32))
        tcs.append(float(tc))
    for cov, tc in zip((np.eye(3), np.ones((3, 3))), tcs):
        cov = cov + 0.09 * np.eye(3)
        assert tc == pytest.approx(0.5 * (np.sum(np.log(np.diag(cov))) - np.linalg.slogdet(cov)[1]), abs=0.15), tcs


def test_the_beta_tcvae_loss_weights_its_parts(mnist_binary):
    model = BetaTCVAE(**SMALL, dataset_size=60000, alpha=2.0, beta=6.0, gamma=0.5, seed=0)
    terms = {k: float(v) for k, v in model.compute_terms(mnist_binary[:32]).items()}
    parts = 2.0 * terms["mutual_information"] + 6.0 * terms["total_correlation"] + 0.5 * terms["dimensionwise_kl"]
    assert terms["loss"] == pytest.approx(terms["reconstruction_loss"] + parts, rel=1e-5)
    assert terms["elbo"] == pytest.approx(-(terms["reconstruction_loss"] + terms["kl"]), rel=1e-6)


@pytest.mark.parametrize("variant", ["i", "ii"])
def test_the_dip_penalty_matches_numpy(variant, mnist_binary):
    x = mnist_binary[:32]
    model = DIPVAE(**SMALL, variant=variant, lambda_od=3.0, seed=0)
    posterior = model.encode(x)
    loc, scale = posterior.mean().numpy().astype("float64"), posterior.stddev().numpy().astype("float64")
    cov = np.cov(loc, rowvar=False, bias=True) + (np.diag(np.mean(scale**2, 0)) if variant == "ii" else 0)
    off = np.sum(cov**2) - np.sum(np.diag(cov) ** 2)
    on = np.sum((np.diag(cov) - 1) ** 2)
    lambda_d = 30.0 if variant == "i" else 3.0  # 10 * lambda_od for DIP-VAE I, lambda_od for II
    terms = {k: float(v) for k, v in model.compute_terms(x).items()}
    assert terms["covariance_off_diagonal"] == pytest.approx(off, rel=1e-3, abs=1e-6)
    assert terms["covariance_diagonal"] == pytest.approx(on, rel=1e-4)
    assert terms["loss"] == pytest.approx(terms["reconstruction_loss"] + terms["kl"] + 3.0 * off + lambda_d * on,
                                          rel=1e-5)


def test_permuted_codes_keep_each_column_and_break_the_rows():
    z = tf.constant(np.arange(40, dtype="float32").reshape(10, 4) * np.array([1, 100, 10000, 1e6], "float32"))
    permuted = penalties.permute_dimensions(z, tf.constant([3, 4])).numpy()
    for d in range(4):
        np.testing.assert_array_equal(np.sort(permuted[:, d]), z.numpy()[:, d])
    assert not np.array_equal(permuted, z.numpy())
    np.testing.assert_array_equal(permuted, penalties.permute_dimensions(z, tf.constant([3, 4])).numpy())


def test_the_discriminator_learns_to_tell_correlated_codes_from_permuted_ones():
    # The penalty's discriminator loss, minimised alone on codes whose two
    # dimensions are equal: the discriminator must find it out.
    layer = penalties.FactorDiscriminator(gamma=1.0, hidden_units=(32, 32))
    layer.build((None, 2))
    optimizer = keras.optimizers.Adam(1e-2)
    rng = np.random.default_rng(0)
    losses, tcs = [], []
    for step in range(150):
        u = rng.normal(size=(128, 1)).astype("float32")
        z = tf.constant(np.concatenate([u, u], 1))[None]
        with tf.GradientTape() as tape:
            terms = layer.terms(None, None, z, tf.constant(0.0), tf.constant([step, 0]), training=True)
        variables = layer.discriminator.trainable_variables
        optimizer.apply_gradients(zip(tape.gradient(terms["discriminator_loss"], variables), variables))
        losses.append(float(terms["discriminator_loss"]))
        tcs.append(float(terms["total_correlation"]))
    assert abs(losses[0] - np.log(2)) < 0.1
    assert np.mean(losses[-10:]) < 0.35 and np.mean(tcs[-10:]) > 1.0


def test_each_optimizer_trains_only_its_own_variables(mnist_binary):
    x = mnist_binary[:32]

    def step(vae_lr, discriminator_lr):
        model = FactorVAE(**SMALL, hidden_units=(16,), seed=0)
        model.compile(optimizer=keras.optimizers.SGD(vae_lr),
                      discriminator_optimizer=keras.optimizers.SGD(discriminator_lr))
        discriminator = model.penalty_layer.discriminator.trainable_variables
        before = [v.numpy() for v in discriminator], [v.numpy() for v in model._trained_variables()]
        model.fit(x, batch_size=32, epochs=1, verbose=0)
        after = [v.numpy() for v in discriminator], [v.numpy() for v in model._trained_variables()]
        return [not all(np.array_equal(a, b) for a, b in zip(*pair)) for pair in zip(before, after)]

    assert step(0.0, 0.1) == [True, False]   # the discriminator moved, the VAE did not
    assert step(0.1, 0.0) == [False, True]   # and the other way round
    model = FactorVAE(**SMALL, hidden_units=(16,), seed=0)
    assert not {id(v) for v in model.penalty_layer.discriminator.trainable_variables} & {
        id(v) for v in model._trained_variables()}
    model.compile()
    config = model.discriminator_optimizer.get_config()
    assert (config["learning_rate"], config["beta_1"], config["beta_2"]) == pytest.approx((1e-4, 0.5, 0.9))


def test_mixed_precision_scales_both_losses(mnist_binary):
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = FactorVAE(**SMALL, hidden_units=(16,), seed=0)
        model.compile()
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
        assert isinstance(model.discriminator_optimizer, keras.optimizers.LossScaleOptimizer)
        history = model.fit(mnist_binary[:64], batch_size=32, epochs=1, verbose=0).history
        assert all(np.isfinite(v[-1]) for v in history.values())
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_the_locatello_architecture():
    model = ConvVAE(data_shape=(64, 64, 1), latent_dim=10, network="locatello", filters=(32, 32, 64, 64),
                    kernel_size=4, seed=0)
    encoder = [(type(layer).__name__, layer.output.shape[1:]) for layer in model.encoder.layers]
    decoder = [(type(layer).__name__, layer.output.shape[1:]) for layer in model.decoder.layers]
    assert encoder == [("Conv2D", (32, 32, 32)), ("Conv2D", (16, 16, 32)), ("Conv2D", (8, 8, 64)),
                       ("Conv2D", (4, 4, 64)), ("Flatten", (1024,)), ("Dense", (256,)), ("Dense", (20,))]
    assert decoder == [("Dense", (256,)), ("Dense", (1024,)), ("Reshape", (4, 4, 64)),
                       ("Conv2DTranspose", (8, 8, 64)), ("Conv2DTranspose", (16, 16, 32)),
                       ("Conv2DTranspose", (32, 32, 32)), ("Conv2DTranspose", (64, 64, 1))]
    assert all(layer.kernel_size == (4, 4) for layer in model.encoder.layers[:4])
    family = BetaTCVAE(dataset_size=737280, seed=0)
    assert family.data_shape == (64, 64, 1) and family.latent_dim == 10 and family.network == "locatello"


def test_a_penalty_where_it_cannot_act_is_refused():
    tc = penalties.TotalCorrelation(dataset_size=100)
    with pytest.raises(ValueError, match=r"`penalty` replaces the ELBO's KL term.*objective"):
        VAE(latent_dim=4, hidden_units=(8,), objective="iwae", num_samples=2, penalty=tc)
    with pytest.raises(ValueError, match=r"`penalty` replaces the ELBO's KL term.*free_bits"):
        VAE(latent_dim=4, hidden_units=(8,), free_bits=0.5, penalty=penalties.TotalCorrelation(dataset_size=100))
    with pytest.raises(ValueError, match=r"`penalty` replaces the ELBO's KL term.*kl_penalty"):
        BetaVAE(latent_dim=4, hidden_units=(8,), penalty=penalties.TotalCorrelation(dataset_size=100))
    with pytest.raises(ValueError, match=r"needs posterior='diagonal_gaussian'. Received: posterior=IAF"):
        VAE(latent_dim=4, hidden_units=(8,), posterior="iaf", penalty=penalties.DIPCovariance())
    with pytest.raises(ValueError, match=r"`penalty` must be None or a keras_vae.penalties.Penalty.*Received: "
                                         r"penalty='tc'"):
        VAE(latent_dim=4, hidden_units=(8,), penalty="tc")
    with pytest.raises(ValueError, match=r"BetaTCVAE makes its own penalty"):
        BetaTCVAE(dataset_size=10, penalty=penalties.DIPCovariance())
    with pytest.raises(ValueError, match=r"`dataset_size` must be a positive integer. Received: dataset_size=0"):
        penalties.TotalCorrelation(dataset_size=0)
    # Any model takes a penalty: an MLP VAE with DIP-VAE's, saved and reloaded.
    model = VAE(latent_dim=4, hidden_units=(8,), penalty=penalties.DIPCovariance(variant="ii"), seed=0)
    assert "covariance_diagonal" in model.metric_names
    restored = VAE.from_config(model.get_config())
    assert isinstance(restored.penalty_layer, penalties.DIPCovariance) and restored.penalty_layer.variant == "ii"


def test_the_weighted_kl_penalty_is_beta_times_the_kl(mnist_binary):
    """A ConvVAE with `WeightedKL(beta)`: its loss is the reconstruction
    term plus beta KL of the same draws, its `elbo` the unweighted bound;
    beta=1 is the plain ConvVAE's loss. It survives a `.keras` round trip."""
    x = mnist_binary[:64]
    logs = {}
    for beta in (1.0, 4.0):
        keras.utils.set_random_seed(0)
        model = ConvVAE(**SMALL, penalty=penalties.WeightedKL(beta=beta), seed=0)
        model.compile()
        logs[beta] = model.evaluate(x, batch_size=64, verbose=0, return_dict=True)
        assert logs[beta]["loss"] == pytest.approx(logs[beta]["reconstruction_loss"] + beta * logs[beta]["kl"],
                                                   rel=1e-5)
        assert logs[beta]["elbo"] == pytest.approx(-logs[beta]["reconstruction_loss"] - logs[beta]["kl"], rel=1e-5)
    keras.utils.set_random_seed(0)
    plain = ConvVAE(**SMALL, seed=0)
    plain.compile()
    assert plain.evaluate(x, batch_size=64, verbose=0, return_dict=True)["loss"] == pytest.approx(
        logs[1.0]["loss"], rel=1e-5)
    restored = ConvVAE.from_config(model.get_config())
    assert isinstance(restored.penalty_layer, penalties.WeightedKL) and restored.penalty_layer.beta == 4.0
    with pytest.raises(ValueError, match=r"`beta` .*Received: beta=-1"):
        penalties.WeightedKL(beta=-1.0)


def test_disentanglement_prints_the_metrics_as_json(tmp_path, capsys):
    """A FactorVAE trained for a few steps on the rendered sprites, scored
    in-process through `cli.main` with small metric settings."""
    model = FactorVAE(latent_dim=4, filters=(8, 8, 16, 16), hidden_units=(16,), seed=0)
    model.compile()
    model.fit(sprites.load_dataset(batch_size=32, num_examples=256, seed=0), epochs=1, verbose=0)
    path = tmp_path / "factor_vae.keras"
    model.save(path)
    output = tmp_path / "scores.json"
    assert cli.main(["disentanglement", str(path), "--metrics", "mig,factor_vae,dci", "--num-train", "300",
                     "--num-test", "200", "--output", str(output)]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed == json.loads(output.read_text())
    assert printed["dataset"] == "sprites" and set(printed) >= {"mig", "factor_vae", "dci"}
    assert printed["settings"] == {"mig": {"num_train": 300}, "factor_vae": {"num_train": 300, "num_eval": 200},
                                   "dci": {"num_train": 300, "num_test": 200}}
    assert 0 <= printed["mig"]["discrete_mig"] <= 1 and 0 <= printed["dci"]["disentanglement"] <= 1
    assert 0 <= printed["factor_vae"]["eval_accuracy"] <= 1
    assert cli.main(["disentanglement", str(path), "--metrics", "mig,irs"]) == 2
    assert "`--metrics` must be one of ('beta_vae'" in capsys.readouterr().err
    small = tmp_path / "vae.keras"
    VAE(latent_dim=2, hidden_units=(8,), seed=0).save(small)
    assert cli.main(["disentanglement", str(small)]) == 2
    assert "must hold a model of (64, 64, 1) images for --dataset sprites. Received: a VAE of (28, 28, 1)" in (
        capsys.readouterr().err)
