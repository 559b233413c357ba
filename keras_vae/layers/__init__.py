"""Layers shared by the zoo models: encoder/decoder stacks, weight-normalised
convolutions and the vector quantizer."""

from keras_vae.layers import networks, weight_norm
from keras_vae.layers.vector_quantizer import CodebookUsage, VectorQuantizer
from keras_vae.layers.weight_norm import WeightNormConv2D

__all__ = ["CodebookUsage", "VectorQuantizer", "WeightNormConv2D", "networks", "weight_norm"]
