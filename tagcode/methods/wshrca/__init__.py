"""WSHRCA (weakly supervised hashing with reconstructive cross-modal attention) and WDHT, its ancestor."""
