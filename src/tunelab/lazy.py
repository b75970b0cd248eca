"""Lazy package faces (PEP 562): a package's `__init__.py` re-exports names from its modules, each module imported
when one of its names is first asked for, so importing the package stays light (no torch before it is needed)."""

from __future__ import annotations

import importlib
import sys


def exports(package: str, where: dict[str, str]):
    """`__getattr__, __dir__ = exports(__name__, {"name": "module", ...})` in a package's `__init__.py`."""

    def __getattr__(name: str):
        if name in where:
            return getattr(importlib.import_module(f"{package}.{where[name]}"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *where})

    return __getattr__, __dir__
