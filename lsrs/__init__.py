"""lsrs: Latent Scale Rejection Sampling for VAR, reproducible end to end."""
__version__ = "0.1.0"
