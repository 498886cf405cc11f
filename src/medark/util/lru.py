"""A small bounded LRU mapping (the DICOM catalog's readers: decoded segments, loaded
trees, remembered search hits), bounded by entries and optionally by a weight."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class LRU(Generic[K, V]):
    """A bounded mapping that forgets its least recently used entries: more than `keep`
    of them, or (with `weight`) more than `budget` in all, the newest always kept."""

    def __init__(self, keep: int, weight: Callable[[V], int] | None = None,
                 budget: int = 0) -> None:
        self.keep = keep
        self._weight = weight
        self._budget = budget
        self._total = 0
        self._items: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> V:
        weigh = self._weight
        old = self._items.pop(key, None)
        if weigh is not None:
            self._total += weigh(value) - (weigh(old) if old is not None else 0)
        self._items[key] = value
        while len(self._items) > 1 and (len(self._items) > self.keep or (
                weigh is not None and self._total > self._budget)):
            _key, gone = self._items.popitem(last=False)
            if weigh is not None:
                self._total -= weigh(gone)
        return value
