"""Shared fixtures for the pure unit tests: the real catalogue, loaded once."""

from __future__ import annotations

import pytest

from shared.catalogue import Catalogue, load_catalogue


@pytest.fixture(scope="session")
def catalogue() -> Catalogue:
    return load_catalogue()
