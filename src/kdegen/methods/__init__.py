"""Trainable systems registered by name: ``METHODS.get("gan")``, ``METHODS.get("kdegen")``, ...

Every module of this package is imported here for its ``@METHODS.register(name)``: a new
method is one new module, registered by its decorator.
"""

from kdegen.methods.base import METHODS, Batch, DataSpec, Method, MethodConfig
from kdegen.registry import import_submodules

import_submodules(__name__)

__all__ = ["METHODS", "Batch", "DataSpec", "Method", "MethodConfig"]
