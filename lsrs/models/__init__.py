"""VAR-compatible models: the multi-scale VQ-VAE tokenizer and the next-scale transformer, and the
FlexVAR family (FlexVAE tokenizer, FlexVAR transformer)."""
from lsrs.models.flexvae import FlexVAE, FlexVAEConfig
from lsrs.models.flexvar import FlexVAR, FlexVARConfig
from lsrs.models.tokenizer import VQVAE, TokenizerConfig
from lsrs.models.transformer import VAR, KVCache, TransformerConfig

__all__ = ["VQVAE", "TokenizerConfig", "VAR", "KVCache", "TransformerConfig", "FlexVAE", "FlexVAEConfig", "FlexVAR",
           "FlexVARConfig"]
