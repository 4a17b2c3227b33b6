"""VAR-compatible models: the multi-scale VQ-VAE tokenizer and the next-scale transformer."""
from lsrs.models.tokenizer import VQVAE, TokenizerConfig
from lsrs.models.transformer import VAR, KVCache, TransformerConfig

__all__ = ["VQVAE", "TokenizerConfig", "VAR", "KVCache", "TransformerConfig"]
