"""`BetaVAE`: a `VAE` whose KL term is weighted (Higgins et al. 2017) or
pulled towards an annealed capacity (Burgess et al. 2018)."""

import keras
import tensorflow as tf

from keras_vae import validation
from keras_vae.models.vae import VAE


@keras.saving.register_keras_serializable(package="keras_vae")
class BetaVAE(VAE):
    """MLP VAE with a weighted KL term.

    Without a capacity the objective is `reconstruction_loss + beta * kl`
    (Higgins et al. 2017). With `capacity` set it is

        reconstruction_loss + gamma * |kl - C|,  C = capacity * min(1, step / capacity_steps)

    (Burgess et al. 2018), C growing linearly over `capacity_steps` optimizer
    steps. Either way `elbo` is reported unweighted, so runs with different
    beta stay comparable.

    Args:
        beta: KL weight, >= 0 (used when `capacity` is None).
        capacity: the final KL target C in nats, or None.
        gamma: weight of `|kl - C|` when `capacity` is set.
        capacity_steps: optimizer steps over which C grows from 0 to `capacity`.
        **kwargs: `VAE` arguments.
    """

    def __init__(self, beta=4.0, capacity=None, gamma=1000.0, capacity_steps=10000, **kwargs):
        super().__init__(**kwargs)
        self.beta = validation.non_negative_float("beta", beta)
        self.capacity = None if capacity is None else validation.non_negative_float("capacity", capacity)
        self.gamma = validation.non_negative_float("gamma", gamma)
        self.capacity_steps = validation.positive_int("capacity_steps", capacity_steps)

    def current_capacity(self):
        """C at the optimizer's current step (0 before the model is compiled)."""
        if self.capacity is None:
            return None
        return self.capacity * self.step_fraction(self.capacity_steps)

    def kl_penalty(self, kl):
        if self.capacity is None:
            return self.beta * kl
        return self.gamma * tf.abs(kl - self.current_capacity())

    def get_config(self):
        return {
            **super().get_config(),
            "beta": self.beta,
            "capacity": self.capacity,
            "gamma": self.gamma,
            "capacity_steps": self.capacity_steps,
        }
