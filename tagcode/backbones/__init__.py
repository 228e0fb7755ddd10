"""Image backbones, registered by name (timm-style), each declaring its preprocessing and feature dimension."""

from tagcode.backbones import alexnet, efficientnet, tiny
from tagcode.backbones.base import BACKBONES, Backbone, Preprocess, create_backbone
from tagcode.backbones.transforms import ten_crop, to_tensor

__all__ = ["BACKBONES", "Backbone", "Preprocess", "alexnet", "create_backbone", "efficientnet", "ten_crop", "tiny",
           "to_tensor"]
