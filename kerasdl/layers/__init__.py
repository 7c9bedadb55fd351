"""Our own Keras layers, each registered for serialization so `model.keras` reloads without custom objects."""

from kerasdl.layers.attention import MultiHeadAttention, ScaledDotProductAttention, causal_mask, padding_mask
from kerasdl.layers.imagenet_input import ImageNetInput
from kerasdl.layers.positional import PositionalEmbedding, SinusoidalPositionalEncoding
from kerasdl.layers.transformer import TransformerDecoderBlock, TransformerEncoderBlock

__all__ = [
    "ImageNetInput",
    "MultiHeadAttention",
    "PositionalEmbedding",
    "ScaledDotProductAttention",
    "SinusoidalPositionalEncoding",
    "TransformerDecoderBlock",
    "TransformerEncoderBlock",
    "causal_mask",
    "padding_mask",
]
