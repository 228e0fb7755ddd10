"""Retrieval methods, registered by name: ``create_method(name, bits=...)``, ``Method.load(path)``.

The baselines register on import; the torch-trained methods when first named, so the baseline cells'
train and encode processes never import torch (1.8 s each on the demo machine).
"""

from tagcode.methods import baselines
from tagcode.methods.base import METHODS, Method, as_features, create_method, load_method

for _name, _module in (("wsdhq", "tagcode.methods.wsdhq.method"), ("wshrca", "tagcode.methods.wshrca.method"),
                       ("wdht", "tagcode.methods.wshrca.method")):
    METHODS.register_lazy(_name, _module)

__all__ = ["METHODS", "Method", "as_features", "baselines", "create_method", "load_method"]
