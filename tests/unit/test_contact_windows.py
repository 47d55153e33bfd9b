"""The outbox's open windows: a window closes once every send of it is reported, however the
batches that redo a failed one split its sends; memory stays bounded."""

from __future__ import annotations

from uuid import uuid4

from services.contact.windows import OpenWindows


def test_a_window_closes_when_its_sends_are_reported_together() -> None:
    windows, w = OpenWindows(), uuid4()
    windows.opened(w, ["a", "b"])
    assert windows.reported(["b", "a"]) == [w]
    assert len(windows) == 0


def test_a_window_whose_sends_come_back_split_closes_with_the_last() -> None:
    windows, w1, w2 = OpenWindows(), uuid4(), uuid4()
    windows.opened(w1, ["a", "b", "c"])
    windows.opened(w2, ["d"])
    assert windows.reported(["a", "d"]) == [w2]
    assert windows.reported(["b", "x"]) == []  # x: recorded by another process
    assert windows.reported(["c"]) == [w1]
    assert windows.reported(["c"]) == []  # reported again: nothing left to close


def test_an_empty_record_opens_no_window() -> None:
    windows = OpenWindows()
    windows.opened(uuid4(), [])
    assert len(windows) == 0


def test_past_the_bound_the_oldest_windows_are_forgotten() -> None:
    windows = OpenWindows(held=4)
    old, mid, new = uuid4(), uuid4(), uuid4()
    windows.opened(old, ["a", "b"])
    windows.opened(mid, ["c", "d"])
    windows.opened(new, ["e", "f"])
    assert len(windows) == 4
    assert windows.reported(["a", "b"]) == []  # forgotten: recovery closes it once stale
    assert windows.reported(["c", "d", "e", "f"]) == [mid, new]
