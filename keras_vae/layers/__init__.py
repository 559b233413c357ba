"""Layers shared by the zoo models: encoder/decoder stacks and the vector quantizer."""

from keras_vae.layers import networks
from keras_vae.layers.vector_quantizer import CodebookUsage, VectorQuantizer

__all__ = ["CodebookUsage", "VectorQuantizer", "networks"]
