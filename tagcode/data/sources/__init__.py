"""Dataset sources, each reading one dataset in its native layout (registered by name)."""

from tagcode.data.sources import fashion_mnist, folder, mirflickr, nuswide, openclipart
from tagcode.data.sources.base import SOURCES, SourceData, load_source

__all__ = ["SOURCES", "SourceData", "fashion_mnist", "folder", "load_source", "mirflickr", "nuswide",
           "openclipart"]
