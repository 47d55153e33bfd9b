"""Control events built for the CLI and HTTP, suppression CSVs, message rendering, exports."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest

from events import LeadReplied, SuppressionAdded, SuppressionRemoved, ids
from services.contact import commands
from services.contact.config import ContactConfig
from services.contact.export import summary_markdown, to_csv
from services.contact.smtp import mime_message
from services.contact.templates import compose, message_id
from tests.factories import lead_factory


def test_a_reply_names_the_lead_by_id_or_by_tenant_and_email() -> None:
    by_email = commands.reply("Ada@Example.com", requested_by="t", tenant_id="acme")
    assert isinstance(by_email, LeadReplied)
    assert by_email.lead_id == ids.lead_id("acme", "ada@example.com")
    by_id = commands.reply(str(by_email.lead_id), requested_by="t", tenant_id="*")
    assert by_id.lead_id == by_email.lead_id
    with pytest.raises(ValueError, match="pass --tenant"):
        commands.reply("ada@example.com", requested_by="t", tenant_id="*")


def test_suppressions_are_normalised_and_removable() -> None:
    added = commands.suppression(email=" Bob@X.com ", requested_by="t")
    assert isinstance(added, SuppressionAdded) and added.email == "bob@x.com"
    removed = commands.suppression(domain="@X.COM", requested_by="t", remove=True)
    assert isinstance(removed, SuppressionRemoved) and removed.domain == "x.com"
    with pytest.raises(ValueError, match="email or a domain"):
        commands.suppression(requested_by="t")


def test_a_suppression_csv_reports_bad_rows_by_line() -> None:
    events, problems = commands.suppressions_from_csv(
        "Email,Domain,Reason\na@x.com,,asked\n,y.org,\nnope,,\n,,\n", requested_by="t",
        tenant_id="acme")
    assert [(e.email, e.domain, e.reason) for e in events] == [  # type: ignore[attr-defined]
        ("a@x.com", None, "asked"), (None, "y.org", None)]
    assert [(p.line, p.reason) for p in problems] == [
        (4, "'nope' is not an email address"), (5, "give an email or a domain to suppress")]
    assert commands.suppressions_from_csv("name\nx\n", requested_by="t")[1][0].line == 1


def test_the_smtp_message_carries_unsubscribe_message_id_and_key() -> None:
    lead = lead_factory(email="ada@engines.com", company="Engines")
    config = ContactConfig()
    key = f"q4:{lead.lead_id}:1"
    msg = compose(config.sequences["standard"].steps[0], lead,
                  message_id=message_id(key, "sales@leadflow.test"),
                  list_unsubscribe=config.list_unsubscribe)
    mime = mime_message(msg, "sales@leadflow.test", key)
    assert mime["Subject"] == "Engines and leadflow"
    assert mime["List-Unsubscribe"] == (
        f"<mailto:unsubscribe@leadflow.invalid?subject=unsubscribe-{lead.lead_id}>")
    assert mime["Message-ID"] == message_id(key, "x@leadflow.test")  # the key decides, stably
    assert mime["Message-ID"].endswith("@leadflow.test>")
    assert mime["X-Leadflow-Key"] == key


def test_export_renders_csv_and_a_summary() -> None:
    rows = [{"lead_id": "L1", "step": 1, "status": "sent", "attempts": 1, "error": None},
            {"lead_id": "L2", "step": 1, "status": "failed", "attempts": 3, "error": "550 | no"}]
    assert to_csv(rows, ("lead_id", "status", "error")) == (
        "lead_id,status,error\r\nL1,sent,\r\nL2,failed,550 | no\r\n")
    text = summary_markdown("q4", [{"state": "completed"}, {"state": "failed"}], rows,
                            {"paused_campaigns": [{"campaign_id": "q4"}]},
                            datetime(2026, 11, 20, tzinfo=UTC))
    assert "- Sends recorded: 1" in text and "- Failed steps: 1" in text
    assert "Campaign paused: yes" in text
    assert "| L2 | 1 | 3 | 550 / no |" in text


@pytest.mark.parametrize("value", ["=HYPERLINK(\"http://x\")", "+1+1", "-2+3", "@SUM(A1)",
                                   "\t=1", "\r=1", "=cmd@evil.test"])
def test_export_cells_never_start_a_spreadsheet_formula(value: str) -> None:
    text = to_csv([{"email": value, "step": 1}], ("email", "step"))
    cell = list(csv.reader(io.StringIO(text, newline="")))[1][0]
    assert cell == "'" + value  # a leading quote: spreadsheets show the text, run nothing
    assert to_csv([{"email": "ann@acme.test", "step": -1}], ("email", "step")).endswith(
        "ann@acme.test,-1\r\n")  # numbers stay numbers
