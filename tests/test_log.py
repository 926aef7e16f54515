"""The event log: ring arithmetic, ids, and where a Last-Event-ID resumes."""

from __future__ import annotations

import pytest

from wsgisse._log import EventLog, Resume


def filled(count: int, capacity: int = 5, replay_limit: int = 5, **kwargs: float) -> EventLog:
    log = EventLog(capacity, replay_limit=replay_limit, **kwargs)
    for n in range(count):
        log.append(f"id{n}", b"frame%d" % n, now=float(n))
    return log


def test_frames_from_cursor_to_head_in_order_across_the_ring_boundary() -> None:
    log = filled(8)
    assert (log.oldest, log.head, len(log)) == (3, 8, 5)
    assert list(log.frames_from(3)) == [b"frame3", b"frame4", b"frame5", b"frame6", b"frame7"]
    assert list(log.frames_from(6)) == [b"frame6", b"frame7"]
    assert list(log.frames_from(8)) == []


def test_frames_older_than_the_ring_are_reported_dropped() -> None:
    log = filled(8)
    with pytest.raises(IndexError):
        log.frames_from(2)


def test_evicted_ids_are_forgotten_and_ids_stay_unique() -> None:
    log = filled(8)
    assert "id2" not in log
    assert "id3" in log
    assert (log.oldest_id(), log.last_id()) == ("id3", "id7")
    with pytest.raises(ValueError, match="already"):
        log.append("id7", b"again", now=9.0)
    log.append("id2", b"reused after eviction", now=9.0)


def test_resume_after_a_held_id_starts_right_after_it() -> None:
    log = filled(8)
    assert log.resume_after("id5", now=8.0) == Resume(6, lost=False)
    assert log.resume_after("id7", now=8.0) == Resume(8, lost=False)


def test_resume_after_an_unknown_or_evicted_id_is_lost_and_starts_at_head() -> None:
    log = filled(8)
    assert log.resume_after("nope", now=8.0) == Resume(8, lost=True)
    assert log.resume_after("id1", now=8.0) == Resume(8, lost=True)


def test_resume_never_replays_part_of_a_gap_beyond_the_replay_limit() -> None:
    log = filled(8, capacity=5, replay_limit=2)
    assert log.resume_after("id5", now=8.0) == Resume(6, lost=False)
    assert log.resume_after("id4", now=8.0) == Resume(8, lost=True)


def test_resume_respects_the_replay_age() -> None:
    log = filled(8, replay_seconds=2.5)
    # id5 missed frames 6 (t=6) and 7 (t=7): at t=8.0 frame 6 is 2 s old.
    assert log.resume_after("id5", now=8.0) == Resume(6, lost=False)
    assert log.resume_after("id5", now=9.0) == Resume(8, lost=True)


def test_replay_limit_zero_means_no_replay_but_an_up_to_date_id_is_fine() -> None:
    log = filled(3, replay_limit=0)
    assert log.resume_after("id2", now=3.0) == Resume(3, lost=False)
    assert log.resume_after("id1", now=3.0) == Resume(3, lost=True)


def test_id_at_reports_held_ids_only() -> None:
    log = filled(8)
    assert [log.id_at(seq) for seq in (2, 3, 7, 8)] == [None, "id3", "id7", None]


@pytest.mark.parametrize(
    ("capacity", "replay_limit", "replay_seconds"),
    [(0, 0, None), (5, 6, None), (5, -1, None), (5, 5, 0.0)],
)
def test_impossible_limits_are_refused(
    capacity: int, replay_limit: int, replay_seconds: float | None
) -> None:
    with pytest.raises(ValueError, match="must be"):
        EventLog(capacity, replay_limit=replay_limit, replay_seconds=replay_seconds)
