"""Network builders shared by the zoo models."""

from keras_vae.layers import networks

__all__ = ["networks"]
