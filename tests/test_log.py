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


def test_the_byte_bound_drops_the_oldest_frames_first() -> None:
    log = EventLog(100, replay_limit=100, max_bytes=25)
    for n in range(6):
        log.append(f"id{n}", b"0123456789", now=float(n))  # 10 bytes each
    assert (log.oldest, log.head, log.held_bytes) == (4, 6, 20)
    assert list(log.frames_from(4)) == [b"0123456789"] * 2
    assert log.resume_after("id3", now=6.0).lost
    assert log.resume_after("id4", now=6.0) == Resume(5, lost=False)


def test_a_frame_larger_than_the_byte_bound_is_refused_and_nothing_changes() -> None:
    log = EventLog(10, replay_limit=10, max_bytes=8)
    log.append("a", b"1234", now=0.0)
    with pytest.raises(ValueError, match="more than the 8 bytes"):
        log.append("b", b"123456789", now=1.0)
    assert (log.oldest, log.head, log.held_bytes, "b" in log) == (0, 1, 4, False)


def test_memory_follows_the_frames_held_not_the_frames_ever_appended() -> None:
    log = EventLog(5, replay_limit=5)
    assert log._frames == []  # noqa: SLF001 - nothing is allocated ahead
    for n in range(10_000):
        log.append(f"id{n}", b"f%d" % n, now=float(n), audience=frozenset({"u"}) if n % 2 else None)
        assert len(log._frames) <= 2 * 5 + 64  # noqa: SLF001
    assert list(log.frames_from(9995)) == [b"f%d" % n for n in range(9995, 10_000)]
    assert list(log.visible_frames(9995, 10_000, "v")) == [
        b"" if n % 2 else b"f%d" % n for n in range(9995, 10_000)
    ]
    assert log.audience_held == 3  # 9995, 9997 and 9999


def test_the_origin_id_resumes_before_the_first_frame_while_it_is_held() -> None:
    log = EventLog(3, replay_limit=3, origin_id="e-0")
    assert log.position_id(0) == "e-0"
    assert log.resume_after("e-0", now=0.0) == Resume(0, lost=False)
    for n in range(2):
        log.append(f"e-{n + 1}", b"x", now=0.0)
    assert log.resume_after("e-0", now=0.0) == Resume(0, lost=False)
    log.append("e-3", b"x", now=0.0)
    log.append("e-4", b"x", now=0.0)  # the first frame is gone
    assert log.resume_after("e-0", now=0.0) == Resume(4, lost=True)
