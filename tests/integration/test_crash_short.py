"""A short run of the crash harness (tools/crashtest.py): SIGKILL the real multi-worker server
during concurrent writes; every acknowledged write survives and the database is intact.
`make crashtest` runs the long version (20 trials per backend)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from kctest import BACKENDS

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
import crashtest  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.crash]


@pytest.mark.parametrize("backend", BACKENDS)
def test_acknowledged_writes_survive_sigkill_of_the_server(backend):
    if backend == "postgresql":
        from kctest import _pg_admin_engine

        _pg_admin_engine().dispose()  # skips (fails under CI) when PostgreSQL is unreachable
    rows = crashtest.run_backend(backend, trials=3, writers=4, max_run_s=1.5, workers=2,
                                 seed=7, log=lambda _line: None)
    assert len(rows) == 3
    assert sum(int(r["acked_this_trial"]) for r in rows) > 0, crashtest.markdown(rows)
    assert crashtest.passed(rows), crashtest.markdown(rows)
