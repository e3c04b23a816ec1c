"""Reader lanes: each thread reads one band of the scene; results never depend on it."""

from __future__ import annotations

import threading

from geoxr.sample._batch_reader import BatchReader


def _threads_by_item(place, batch: list[int]) -> tuple[list[int], dict[int, int]]:
    seen: dict[int, int] = {}
    lock = threading.Lock()

    def load(i: int, slot: object) -> int:
        with lock:
            seen[i] = threading.get_ident()
        return i * i

    reader = BatchReader(load, lambda: 64, place)
    return reader.fetch(batch), seen  # a random-looking batch: no read-ahead


def test_lanes_read_one_band_each_and_keep_the_batch_order(monkeypatch) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    batch = [5, 40, 2, 33, 9, 60, 17, 48]
    items, seen = _threads_by_item(lambda i: (i % 8 * 8 + i // 8,), batch)  # column = i % 8
    assert items == [i * i for i in batch]
    # Ordered by (column, row): 40 48 | 9 17 | 33 | 2 | 60 | 5. The plan's bands meet at
    # column 32 (4 of 8 columns); six items lie left of it, and the cut moves from four
    # items towards six by at most a quarter of a lane's share: one.
    left = {seen[i] for i in [40, 48, 9, 17, 33]}
    right = {seen[i] for i in [2, 60, 5]}
    assert len(left) == 1 and len(right) == 1 and left != right


def test_lanes_keep_to_their_band_of_the_plan_from_batch_to_batch(monkeypatch) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    first = [1, 3, 5, 7, 9, 11, 13, 40]  # mostly left of the plan's middle (32)
    second = [20, 24, 28, 30, 34, 36, 38, 60]  # balanced around it
    items, lane_of = _threads_by_item(lambda i: (i,), first)
    assert items == [i * i for i in first]
    items, seen = _threads_by_item(lambda i: (i,), second)
    assert items == [i * i for i in second]
    # Without the plan's bands the first batch splits 4 | 4 (9 would go right);
    # with them the left lane takes one more: 1 3 5 7 9 | 11 13 40.
    assert len({lane_of[i] for i in [1, 3, 5, 7, 9]}) == 1
    assert len({lane_of[i] for i in [11, 13, 40]}) == 1
    assert lane_of[1] != lane_of[40]
    assert len({seen[i] for i in [20, 24, 28, 30]}) == 1
    assert len({seen[i] for i in [34, 36, 38, 60]}) == 1
    assert seen[20] != seen[60]


def test_without_place_items_still_come_back_in_order(monkeypatch) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    items, seen = _threads_by_item(None, [5, 40, 2, 33, 9, 60, 17, 48])
    assert items == [i * i for i in [5, 40, 2, 33, 9, 60, 17, 48]]
    assert set(seen) == {5, 40, 2, 33, 9, 60, 17, 48}


def test_without_place_each_lane_takes_a_run_of_the_batch(monkeypatch) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    batch = [5, 40, 2, 33, 9, 60, 17, 48]
    _, seen = _threads_by_item(None, batch)
    # Ordered by index: 2 5 9 17 | 33 40 48 60, one run (one task) per lane.
    assert len({seen[i] for i in [2, 5, 9, 17]}) == 1
    assert len({seen[i] for i in [33, 40, 48, 60]}) == 1
    assert seen[2] != seen[60]


def _failing_at(bad: int):
    """A loader of items ``i`` (as themselves) that raises for item ``bad``."""

    def load(i: int, slot: object) -> int:
        if i == bad:
            raise ValueError(f"item {bad} is unreadable")
        return i

    return load


def test_an_item_that_fails_raises_when_its_batch_is_fetched(monkeypatch) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    reader = BatchReader(_failing_at(21), lambda: 64)
    assert reader.fetch(list(range(0, 16))) == list(range(16))  # reads 16-31 ahead
    try:
        reader.fetch(list(range(16, 32)))
    except ValueError as exc:
        assert "item 21" in str(exc)
    else:
        raise AssertionError("the failing item did not raise")
    # The batch after it is read as usual.
    assert reader.fetch(list(range(32, 48))) == list(range(32, 48))


def test_an_item_read_ahead_that_fails_fails_only_when_asked_for(monkeypatch) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    reader = BatchReader(_failing_at(11), lambda: 64)
    assert reader.fetch(list(range(8))) == list(range(8))  # reads 8-15 ahead, 8-11 in one run
    assert reader.fetch([8, 9, 10]) == [8, 9, 10]  # a shorter batch: 11 was a wrong guess


def test_a_repeated_index_gets_a_slot_of_its_own(monkeypatch) -> None:
    # A sampler drawing with replacement: both copies went to one slot, which two
    # lanes then wrote at once.
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    positions: list[int] = []
    lock = threading.Lock()

    def load(i: int, slot) -> int:
        with lock:
            positions.append(slot.position)
        return i

    batch = [3, 7, 3, 3, 9, 7]
    assert BatchReader(load, lambda: 64).fetch(batch) == batch
    assert sorted(positions) == list(range(len(batch)))
