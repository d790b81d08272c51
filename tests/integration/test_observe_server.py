"""/metrics on the real multi-worker server adds up the counters of every worker."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
from kcharness import Instance  # noqa: E402

pytestmark = [pytest.mark.slow]


def test_metrics_count_the_requests_of_every_worker():
    with Instance("sqlite", workers=2) as inst:
        inst.setup()
        sent = 60
        for _ in range(sent):  # new connections: the workers share them out
            assert httpx.get(inst.base_url + "/healthz").status_code == 200
        text = httpx.get(inst.base_url + "/metrics").text
        files = list((inst.data_dir / "prometheus-multiproc").glob("counter_*.db"))
    found = re.search(r'ketaclinic_http_requests_total\{method="GET",route="/healthz",'
                      r'status="200"\} (\d+)', text)
    assert found, text[:500]
    # setup() polls /healthz too: at least every request sent here, from both workers.
    assert int(found.group(1)) >= sent
    assert len(files) >= 2  # a counter file per worker, added up by /metrics
