"""The red-team files' served lab (``tests/redteam_lab.served_lab``) as a fixture; a file that
needs other settings defines its own ``lab``."""

from __future__ import annotations

import pytest

from redteam_lab import served_lab


@pytest.fixture
def lab(settings, tiny_tweets, tmp_path):
    """(settings, store, client) on the tiny tweets task."""
    with served_lab(settings, tmp_path) as served:
        yield served
