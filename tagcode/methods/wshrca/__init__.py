"""WSHRCA (weakly supervised hashing with reconstructive cross-modal attention) and WDHT, its ancestor,
registered as the methods ``wshrca`` and ``wdht``."""

from tagcode.methods.wshrca import method

__all__ = ["method"]
