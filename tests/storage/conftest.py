"""Fixtures giving each conformance test a fresh backend of every kind in CASES."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from storage_cases import CASES, BackendCase, MakeCase

from medark.storage.base import Backend


@pytest.fixture(params=list(CASES), scope="session")
def make_case(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> MakeCase:
    """A factory of fresh, not yet created backends of one kind. Session-scoped so that
    hypothesis tests can make a new backend per example."""
    factory = CASES[request.param]
    return lambda: factory(tmp_path_factory)


@pytest.fixture
def case(make_case: MakeCase) -> Iterator[BackendCase]:
    made = make_case()
    made.backend.create()
    yield made
    made.backend.close()


@pytest.fixture
def backend(case: BackendCase) -> Backend:
    return case.backend
