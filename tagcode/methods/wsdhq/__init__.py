"""WSDHQ (Wang et al., AAAI 2021): tag-supervised deep hyperspherical quantization, after the spec
``shared/specs/wsdhq.md``: embedding head, adaptive-margin and quantization losses, ICM quantizer."""

from tagcode.methods.wsdhq.method import WSDHQ, WSDHQOptions

__all__ = ["WSDHQ", "WSDHQOptions"]
