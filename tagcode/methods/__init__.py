"""Retrieval methods, registered by name: ``create_method(name, bits=...)``, ``Method.load(path)``."""

from tagcode.methods import baselines, wsdhq, wshrca
from tagcode.methods.base import METHODS, Method, as_features, create_method, load_method

__all__ = ["METHODS", "Method", "as_features", "baselines", "create_method", "load_method", "wsdhq", "wshrca"]
