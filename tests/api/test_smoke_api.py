"""A first pass through the API: a template, a batch, its results."""

from __future__ import annotations

import pytest
from tests.api.conftest import Api, create_template, wait_for_batch

pytestmark = pytest.mark.chromium


async def test_template_batch_results_round_trip(api: Api):
    template = await create_template(api)
    response = await api.client.post(
        f"/templates/{template['uid']}/batch-render",
        json={"variableSets": [{"title": f"row {i}"} for i in range(5)], "format": "jpeg"},
        headers=api.auth(),
    )
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["status"] == "pending" and accepted["totalItems"] == 5
    done = await wait_for_batch(api, accepted["batchId"])
    assert done["status"] == "completed"
    assert done["completedCount"] == 5
    assert [r["index"] for r in done["results"]] == [0, 1, 2, 3, 4]
    assert all(r["width"] == 200 and r["height"] == 100 for r in done["results"])
