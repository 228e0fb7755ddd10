"""tagcode: weakly supervised image retrieval (WSDHQ, WSHRCA) as a reproducible pipeline."""

__version__ = "0.1.0"
