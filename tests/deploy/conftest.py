from __future__ import annotations

import pytest

from tests.deploy.rendered import Resource, render


@pytest.fixture(scope="module")
def prod() -> list[Resource]:
    """The prod overlay, rendered once per module (kubectl kustomize)."""
    return render("prod")
