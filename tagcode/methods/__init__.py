"""Retrieval methods, registered by name: ``create_method(name, bits=...)``, ``load_method(path)``."""

from tagcode.methods import baselines
from tagcode.methods.base import METHODS, Method, create_method, load_method

__all__ = ["METHODS", "Method", "baselines", "create_method", "load_method"]
