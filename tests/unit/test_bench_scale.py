"""`leadflow bench scale` feeds each stage what it consumes: its input topic's events, with the
lead at the status the stage expects and valid under the state machine."""

from __future__ import annotations

import pytest

from events import STAGE_INPUTS, JobName, LeadEvent
from events.state_machine import implausibility
from services.bench.scale import JOBS, input_backlog


@pytest.mark.parametrize("job", JOBS, ids=lambda j: j.value)
def test_each_stages_backlog_is_its_input(job: JobName) -> None:
    events = input_backlog(job, 20, "bench-x1")
    assert len(events) == 20 and len({e.event_id for e in events}) == 20
    for event in events:
        assert isinstance(event, LeadEvent)
        assert event.topic in STAGE_INPUTS[job]
        assert event.lead.status == event.target and event.lead.tenant_id == "bench-x1"
        assert implausibility(event, event.topic) is None, implausibility(event, event.topic)


def test_trials_of_a_stateful_stage_get_leads_of_their_own() -> None:
    one, two = (input_backlog(JobName.ROUTE, 5, t) for t in ("bench-x1", "bench-x2"))
    assert not {e.lead.lead_id for e in one} & {e.lead.lead_id for e in two}
