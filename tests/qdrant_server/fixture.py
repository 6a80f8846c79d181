"""pytest fixtures for the Qdrant-compatible test server.

Owns: one server process per pytest session (``qdrant_session``) and the per-test ``qdrant``
fixture, which calls ``reset()`` first so every test starts with no collections, no faults, an
empty request log and no request of an earlier test still to be applied (a killed daemon's write
held by a latency rule is dropped, not applied into the next test's collection of that name).

Use from a conftest (works with plain ``pytest`` and ``python3 -m pytest`` from the repo root)::

    import pathlib, sys
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))  # repo root
    from tests.qdrant_server.fixture import qdrant, qdrant_session  # noqa: F401

Invariant: the session server is stopped (its own pid only) when the session ends.
"""
import pytest

from .client import QdrantStub


@pytest.fixture(scope="session")
def qdrant_session():
    stub = QdrantStub.start()
    try:
        yield stub
    finally:
        stub.stop()


@pytest.fixture
def qdrant(qdrant_session):
    qdrant_session.reset()
    return qdrant_session
