"""Which advisory locks a projector holds: alone, or as one worker of a split (pure)."""

from __future__ import annotations

from services.projector.service import Share, locks_for


def test_a_projector_alone_holds_the_schema_lock_exclusively() -> None:
    assert locks_for("p.", "s", None, [0, 1, 2]) == [(locks_for("p.", "s", None, [])[0][0], False)]


def test_splits_that_would_fold_the_same_partitions_conflict_and_disjoint_ones_do_not() -> None:
    def exclusive(index: int, count: int, numbers: list[int]) -> set[int]:
        locks = locks_for("p.", "s", Share(index, count, frozenset({"leads"})), numbers)
        alone = locks_for("p.", "s", None, [])[0][0]
        assert (alone, True) in locks  # shared with the other workers, refused while one is alone
        return {key for key, shared in locks if not shared}

    half0, half1 = exclusive(0, 2, [0, 2]), exclusive(1, 2, [1])
    third0, third1 = exclusive(0, 3, [0]), exclusive(1, 3, [1])
    assert not half0 & half1  # the two halves run side by side
    assert half0 & third0  # partition 0 and the unkeyed topics
    assert half1 & third1 and not half0 & third1  # partition 1 only
    assert locks_for("q.", "s", Share(1, 2, frozenset()), [1]) != \
        locks_for("p.", "s", Share(1, 2, frozenset()), [1])  # deployments never collide
