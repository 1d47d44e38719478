"""Fixtures shared by the chart tests; helpers live in chart_helpers.py."""

import pytest

from chart_helpers import Rendered, render


@pytest.fixture(scope="session")
def default() -> Rendered:
    """The chart with its default values (tls.mode generate)."""
    return render()
