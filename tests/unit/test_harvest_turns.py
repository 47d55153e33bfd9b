"""Turns over several tenants' sources: the share of a turn, and a tenant's sources read a
turn at a time in config order."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.harvest.config import HarvestSource
from services.harvest.turns import TenantSources, turn_size
from tests.factories import source_rows, write_csv

pytestmark = pytest.mark.unit


def test_a_turn_is_an_even_share_of_what_is_left_within_a_chunk() -> None:
    assert turn_size(300, 3, 500) == 100
    assert turn_size(301, 3, 500) == 101  # rounded up: the last tenant may find the cap reached
    assert turn_size(10_000, 2, 500) == 500
    assert turn_size(0, 4, 500) == 1 and turn_size(5, 0, 500) == 5


def test_sources_are_grouped_by_tenant_and_read_in_turns_across_files(tmp_path: Path) -> None:
    a1 = write_csv(tmp_path / "a1.csv", source_rows(3))
    b = write_csv(tmp_path / "b.csv", source_rows(2))
    a2 = write_csv(tmp_path / "a2.csv", source_rows(2))
    groups = TenantSources.group([HarvestSource(path=a1, tenant="acme"),
                                  HarvestSource(path=b, tenant="globex"),
                                  HarvestSource(path=a2, tenant="acme")])
    assert [g.tenant for g in groups] == ["acme", "globex"]
    acme = groups[0]
    turns = []
    while (turn := acme.next_rows(2)) is not None:
        source, rows = turn
        turns.append((source.path.name, [r.line for r in rows]))
    assert turns == [("a1.csv", [2, 3]), ("a1.csv", [4]), ("a2.csv", [2, 3])]


def test_a_source_gone_halfway_is_dropped_and_the_next_one_read(tmp_path: Path) -> None:
    gone = tmp_path / "gone.csv"
    after = write_csv(tmp_path / "after.csv", source_rows(1))
    [group] = TenantSources.group([HarvestSource(path=gone, tenant="acme"),
                                   HarvestSource(path=after, tenant="acme")])
    with pytest.raises(OSError):
        group.next_rows(5)
    turn = group.next_rows(5)
    assert turn is not None and turn[0].path == after and len(turn[1]) == 1
    group.close()


def test_rows_put_back_are_read_first_in_the_next_turn(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "a.csv", source_rows(5))
    [group] = TenantSources.group([HarvestSource(path=source, tenant="acme")])
    first = group.next_rows(3)
    assert first is not None
    group.put_back(first[1][1:])  # the turn's share ended after the first row
    again = group.next_rows(10)
    assert again is not None and [r.line for r in again[1]] == [3, 4]
    rest = group.next_rows(10)
    assert rest is not None and [r.line for r in rest[1]] == [5, 6]
    assert group.next_rows(10) is None
