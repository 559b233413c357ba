import keras
import numpy as np
import pytest
from model_test_case import ModelTests

from keras_vae import BetaVAE


class TestBetaVAE(ModelTests):
    model_class = BetaVAE
    init_kwargs = {"latent_dim": 4, "hidden_units": (64,), "beta": 4.0}


def test_beta_weights_the_kl_only(mnist_binary):
    model = BetaVAE(beta=4.0, latent_dim=4, hidden_units=(32,), seed=0)
    terms = {k: float(v) for k, v in model.compute_terms(mnist_binary[:16]).items()}
    assert terms["loss"] == pytest.approx(terms["reconstruction_loss"] + 4.0 * terms["kl"], rel=1e-6)
    assert terms["elbo"] == pytest.approx(-(terms["reconstruction_loss"] + terms["kl"]), rel=1e-6)


def test_capacity_is_annealed_linearly(mnist_binary):
    model = BetaVAE(capacity=20.0, gamma=100.0, capacity_steps=4, latent_dim=4, hidden_units=(32,), seed=0)
    model.compile(optimizer=keras.optimizers.SGD(0.0))  # lr 0: the weights stay put
    x = mnist_binary[:16]
    for step, expected in [(0, 0.0), (2, 10.0), (4, 20.0), (6, 20.0)]:
        model.optimizer.iterations.assign(step)
        assert float(model.current_capacity()) == pytest.approx(expected)
        terms = {k: float(v) for k, v in model.compute_terms(x).items()}
        assert terms["loss"] == pytest.approx(
            terms["reconstruction_loss"] + 100.0 * abs(terms["kl"] - expected), rel=1e-5
        )
    # The compiled step reads the schedule at run time, not at trace time.
    for step, expected in [(1, 5.0), (3, 15.0)]:
        model.optimizer.iterations.assign(step)
        logs = model.evaluate(x, batch_size=len(x), return_dict=True, verbose=0)
        assert logs["loss"] == pytest.approx(
            logs["reconstruction_loss"] + 100.0 * abs(logs["kl"] - expected), rel=1e-5
        )


def test_capacity_before_compile_is_zero(mnist_binary):
    model = BetaVAE(capacity=20.0, latent_dim=2, hidden_units=(8,), seed=0)
    assert float(model.current_capacity()) == 0.0
    assert np.isfinite(float(model.compute_terms(mnist_binary[:4])["loss"]))


@pytest.mark.parametrize("kwargs, arg", [({"beta": -1.0}, "beta"), ({"capacity": -2.0}, "capacity"),
                                         ({"capacity_steps": 0}, "capacity_steps")])
def test_bad_arguments(kwargs, arg):
    with pytest.raises(ValueError, match=f"`{arg}` must .*Received: {arg}="):
        BetaVAE(**kwargs)
