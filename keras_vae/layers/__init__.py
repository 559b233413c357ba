"""Layers shared by the zoo models: encoder/decoder stacks, weight-normalised
convolutions, the masked autoregressive network of the flows and the vector
quantizer."""

from keras_vae.layers import networks, weight_norm
from keras_vae.layers.autoregressive import MaskedAutoregressiveNetwork
from keras_vae.layers.vector_quantizer import CodebookUsage, VectorQuantizer
from keras_vae.layers.weight_norm import WeightNormConv2D

__all__ = ["CodebookUsage", "MaskedAutoregressiveNetwork", "VectorQuantizer", "WeightNormConv2D", "networks",
           "weight_norm"]
