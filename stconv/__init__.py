"""stconv: spatiotemporal forecasting with STConvS2S in JAX and Flax NNX."""

__version__ = "0.1.0"
