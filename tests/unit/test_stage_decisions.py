"""Pure stage decisions: harvest normalisation, scoring, qualification, routing, templates."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from events import Assignment, Lead, LeadStatus, ScoreCard, ids
from events.emails import email_problem
from services.contact.config import SequenceStep
from services.contact.templates import compose, render
from services.harvest.normalize import (
    normalise_row,
    parse_country,
    parse_domain,
    parse_employees,
    read_lead,
)
from services.qualify.config import QualifyConfig
from services.qualify.decide import domain_suppressed, qualify_lead
from services.route.config import RouteConfig, Segment
from services.route.decide import assign, matches, pick_segment
from services.score.config import ScoreConfig
from services.score.decide import employee_points, industry_points, score_lead, seniority
from tests.factories import NOW, lead_factory


@pytest.mark.parametrize(("email", "ok"), [
    ("jane@acme.com", True), ("jane.doe+tag@mail.acme.co.uk", True), ("j@a.io", True),
    ("", False), ("jane", False), ("jane@", False), ("@acme.com", False), ("a@b@c.com", False),
    ("jane@acme", False), ("jane@acme..com", False), ("jane doe@acme.com", False),
    ("jane@-acme.com", False), ("jane@acme.c0m", False), (".jane@acme.com", False),
])
def test_email_syntax(email: str, ok: bool) -> None:
    assert (email_problem(email) is None) is ok


def test_normalise_trims_lowercases_and_keys_the_lead_by_tenant_and_email() -> None:
    row = {" Email ": "  Jane.Doe@ACME.com ", "Company": " Acme ", "website": "https://www.Acme.com/x",
           "industry": "SaaS", "employees": "51-200", "country": "united kingdom", "dnc": "yes"}
    lead = normalise_row(row, tenant_id="t1", campaign_id="c", source="f.csv", at=NOW)
    assert lead.email == "jane.doe@acme.com"
    assert lead.lead_id == ids.lead_id("t1", "jane.doe@acme.com") != ids.lead_id("t2", lead.email)
    assert (lead.company, lead.domain, lead.industry) == ("Acme", "acme.com", "saas")
    assert (lead.employees, lead.country, lead.do_not_contact) == (51, "GB", True)
    assert (lead.status, lead.version) == (LeadStatus.NEW, 1)


@pytest.mark.parametrize(("row", "reason"), [
    ({"email": ""}, "email is missing"),
    ({"email": "nope"}, "exactly one @"),
    ({"email": "a@b.com", "company": "Ac\x00me"}, r"company .* control character U\+0000"),
    ({"email": "a@b.com", "title": "x\x1b[31m"}, r"title .* control character U\+001B"),
    ({"email": "a\x07@b.com"}, r"email .* control character U\+0007"),
])
def test_rows_that_cannot_be_leads_say_why(row: dict[str, str], reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        normalise_row(row, tenant_id="t", campaign_id="c", source="s", at=NOW)


def test_an_unreadable_employees_value_is_unknown_with_a_warning() -> None:
    lead, warnings = read_lead({"email": "a@b.com", "employees": "lots", "title": "a\tb"},
                               tenant_id="t", campaign_id="c", source="s", at=NOW)
    assert lead.employees is None and lead.title == "a\tb"  # tab, CR and LF are text
    assert warnings == ("employees 'lots' is not a number, a range like 51-200, or 1000+; "
                        "recorded as unknown",)


@pytest.mark.parametrize(("text", "expected"), [
    ("250", 250), ("1,200", 1200), ("51-200", 51), ("51 to 200", 51), ("1000+", 1000), (None, None)])
def test_parse_employees(text: str | None, expected: int | None) -> None:
    assert parse_employees(text) == expected


def test_parse_country_and_domain() -> None:
    assert (parse_country("us"), parse_country("USA"), parse_country("Narnia")) == ("US", "US", "Narnia")
    assert parse_domain("http://www.x.io:8080/a", "a@b.com") == "x.io"
    assert parse_domain("not a domain", "a@b.com") == "b.com"


@pytest.mark.parametrize(("title", "level"), [
    ("CEO", "c_level"), ("Chief Revenue Officer", "c_level"), ("Co-Founder", "c_level"),
    ("VP of Sales", "vp"), ("Head of Growth", "vp"), ("Director of Marketing", "director"),
    ("Engineering Manager", "manager"), ("Software Engineer", "individual"), (None, "individual"),
    ("Directory Services Admin", "individual"),  # 'director' only as a whole word
    ("Actor", "individual"),  # 'cto' inside a word does not count
])
def test_seniority_from_title(title: str | None, level: str) -> None:
    assert seniority(title, ScoreConfig().seniority_keywords) == level


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["chief", "vp", "head", "of", "director", "lead", "leader",
                                 "manager", "-", " ", "/", "x", "cto", "actor", "2"]), max_size=8))
def test_seniority_matches_a_keyword_by_keyword_whole_word_search(words: list[str]) -> None:
    title = "".join(words)
    keywords = ScoreConfig().seniority_keywords
    expected = next((level for level, kws in keywords.items()
                     if any(re.search(rf"(?<![a-z0-9]){re.escape(k)}(?![a-z0-9])", title)
                            for k in kws)), "individual")
    assert seniority(title, keywords) == expected


def test_score_is_the_sum_of_its_factors_clamped_and_versioned() -> None:
    cfg = ScoreConfig(model_version="m7")
    card = score_lead(lead_factory(industry="software", employees=250, country="gb", title="CTO"), cfg)
    assert card.factors == {"industry": 30, "employees": 25, "country": 18, "seniority": 25}
    assert (card.value, card.model_version) == (98, "m7")
    empty = score_lead(lead_factory(industry=None, employees=None, country=None, title=None), cfg)
    assert empty.value == cfg.seniority["individual"]
    assert industry_points("enterprise software", cfg.industry) == 30
    assert employee_points(0, cfg) == 0


def test_qualification_lists_every_reason() -> None:
    cfg = QualifyConfig(min_score=60, required_fields=("email", "company", "title"),
                        suppressed_domains=("rival.com",))
    lead = lead_factory(email="x@sub.rival.com", company=None, title="", do_not_contact=True,
                        score=ScoreCard(value=10, factors={}, model_version="m"))
    verdict = qualify_lead(lead, cfg)
    assert not verdict.qualified
    assert verdict.reasons == ("score_below_minimum", "missing_field:company", "missing_field:title",
                               "suppressed_domain", "do_not_contact")
    good = lead_factory(score=ScoreCard(value=60, factors={}, model_version="m"))
    assert qualify_lead(good, cfg).qualified
    assert domain_suppressed("rival.com", ("rival.com",))
    assert not domain_suppressed("notrival.com", ("rival.com",))


def test_routing_takes_the_first_matching_segment_and_rotates_owners() -> None:
    cfg = RouteConfig()
    big, mid, small = (lead_factory(employees=n) for n in (5000, 100, 3))
    assert [pick_segment(x, cfg.segments).name for x in (big, mid, small)] == [
        "enterprise", "mid-market", "smb"]
    seg = cfg.segments[1]
    assert [assign(seg, i).owner for i in range(5)] == ["cleo", "dan", "eve", "cleo", "dan"]
    assert assign(seg, 0) == Assignment(segment="mid-market", sequence_id="standard", owner="cleo")
    scoped = Segment(name="de", sequence="s", owners=("o",), countries=("de",), min_score=50)
    assert matches(lead_factory(country="DE", score=ScoreCard(value=50, factors={}, model_version="m")),
                   scoped)
    assert not matches(lead_factory(country="DE"), scoped)


_maybe_words = st.none() | st.lists(st.sampled_from(["saas", "SaaS", "fintech", "de", "FR", ""]),
                                    max_size=3).map(tuple)
_maybe_int = st.none() | st.integers(min_value=0, max_value=2000)


@settings(max_examples=300)
@given(industries=_maybe_words, countries=_maybe_words, low=_maybe_int, high=_maybe_int,
       min_score=st.none() | st.integers(0, 100),
       industry=st.none() | st.sampled_from(["saas", "SaaS", "fintech", ""]),
       country=st.none() | st.sampled_from(["DE", "de", "FR", ""]), employees=_maybe_int,
       score=st.none() | st.integers(0, 100))
def test_a_segment_matches_a_lead_meeting_every_condition_it_sets(
        industries: tuple[str, ...] | None, countries: tuple[str, ...] | None, low: int | None,
        high: int | None, min_score: int | None, industry: str | None, country: str | None,
        employees: int | None, score: int | None) -> None:
    segment = Segment(name="s", sequence="q", owners=("o",), industries=industries,
                      countries=countries, min_employees=low, max_employees=high,
                      min_score=min_score)
    card = None if score is None else ScoreCard(value=score, factors={}, model_version="m")
    lead = lead_factory(industry=industry, country=country, employees=employees, score=card)
    # Industries are compared with the configured names lower-cased; countries upper-cased on
    # both sides; a lead without employees fails any employee bound; no score counts as 0.
    expected = all((
        industries is None or (industry or "") in {i.lower() for i in industries},
        countries is None or (country or "").upper() in {c.upper() for c in countries},
        low is None or (employees is not None and employees >= low),
        high is None or (employees is not None and employees <= high),
        min_score is None or (score or 0) >= min_score,
    ))
    assert matches(lead, segment) is expected


def test_route_config_requires_a_catch_all_last() -> None:
    with pytest.raises(ValueError, match="catch-all"):
        RouteConfig(segments=(Segment(name="x", sequence="s", owners=("o",), min_employees=1),))


def test_templates_fill_lead_fields_and_refuse_unknown_ones() -> None:
    lead = lead_factory(first_name=None, company="Acme")
    assert render("Hi {first_name} at {company}", lead) == "Hi there at Acme"
    message = compose(SequenceStep(name="intro", subject="{company}", body="{title}"), lead)
    assert (message.to, message.subject, message.body) == (lead.email, "Acme", "CTO")
    with pytest.raises(ValueError, match="unknown field"):
        render("{password}", lead)


@pytest.mark.parametrize("template", ["Hi {}", "Hi {0}", "{company[40]}", "{company.name}",
                                      "{first_name:%}"])
def test_a_template_that_cannot_be_filled_is_a_clear_value_error(template: str) -> None:
    # A ValueError fails that lead's step with the reason; anything else would fail the batch.
    with pytest.raises(ValueError, match=r"cannot be filled|positional|format"):
        render(template, lead_factory(company="Acme"))


def test_score_and_qualify_decide_each_lead_by_its_tenants_rules() -> None:
    score = ScoreConfig(tenants={"globex": {"industry": {"retail": 60}, "model_version": "g1"}})
    qualify = QualifyConfig(min_score=50, tenants={"globex": {"min_score": 90}})
    def lead(tenant: str, **fields: object) -> Lead:
        return lead_factory(tenant_id=tenant, industry="retail", title="Engineer", employees=20,
                            country="US", **fields)

    for tenant, value, version in (("acme", 10 + 12 + 20 + 3, "icp-v1"),
                                   ("globex", 60 + 12 + 20 + 3, "g1")):
        card = score_lead(lead(tenant), score)
        assert (card.value, card.model_version) == (value, version), tenant
    card = ScoreCard(value=70, factors={}, model_version="t")
    assert qualify_lead(lead("acme", score=card), qualify).qualified
    assert qualify_lead(lead("globex", score=card), qualify).reasons == ("score_below_minimum",)
