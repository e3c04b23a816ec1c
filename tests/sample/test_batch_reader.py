"""Reader lanes: each thread reads one band of the scene; results never depend on it."""

from __future__ import annotations

import threading

from geoxr.sample._batch_reader import BatchReader


def _threads_by_item(place) -> tuple[list[int], dict[int, int]]:
    seen: dict[int, int] = {}
    lock = threading.Lock()

    def load(i: int, slot: object) -> int:
        with lock:
            seen[i] = threading.get_ident()
        return i * i

    reader = BatchReader(load, lambda: 64, place)
    batch = [5, 40, 2, 33, 9, 60, 17, 48]  # a random-looking batch: no read-ahead
    return reader.fetch(batch), seen


def test_lanes_read_one_band_each_and_keep_the_batch_order(monkeypatch) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    items, seen = _threads_by_item(lambda i: (i % 8 * 8 + i // 8,))  # column = i % 8
    assert items == [i * i for i in [5, 40, 2, 33, 9, 60, 17, 48]]
    # Ordered by (column, row): 40 48 | 9 17 | 33 | 2 | 60 | 5 -> two lanes of four.
    left = {seen[i] for i in [40, 48, 9, 17]}
    right = {seen[i] for i in [33, 2, 60, 5]}
    assert len(left) == 1 and len(right) == 1 and left != right


def test_without_place_items_still_come_back_in_order(monkeypatch) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    items, seen = _threads_by_item(None)
    assert items == [i * i for i in [5, 40, 2, 33, 9, 60, 17, 48]]
    assert set(seen) == {5, 40, 2, 33, 9, 60, 17, 48}
