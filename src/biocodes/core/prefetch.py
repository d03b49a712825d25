"""Compute the next item of an iterator in a background thread.

The hasher (iscc-lib) releases the GIL while it hashes, and so do file reads
and the decompressors of tifffile and zarr. Producing the next plane in a
thread while the current one is hashed therefore puts reading and hashing on
separate cores. The producer is never more than one item ahead: it starts an
item only once the consumer has taken the previous one, so at most two items
(plus the one being built) exist at a time.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

_DONE = object()
_POLL = 0.1  # seconds between checks for a consumer that went away


class _Failed:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def prefetch(items: Iterable[T]) -> Iterator[T]:
    """Yield ``items`` in order, each computed in a thread while the consumer
    works on the one before.

    An exception in the producer is raised in the consumer at the position it
    happened. If the consumer stops early, the producer is stopped before
    this generator returns, so no thread outlives its consumer.
    """
    box: queue.Queue = queue.Queue(maxsize=1)
    taken = threading.Semaphore(1)  # released each time the consumer takes one
    stop = threading.Event()

    def wait_turn() -> bool:
        while not stop.is_set():
            if taken.acquire(timeout=_POLL):
                return True
        return False

    def produce() -> None:
        iterator = iter(items)
        while wait_turn():
            try:
                item = next(iterator, _DONE)
            except BaseException as exc:  # handed to the consumer
                item = _Failed(exc)
            box.put(item)  # never blocks: the consumer took the last one
            if item is _DONE or isinstance(item, _Failed):
                return

    thread = threading.Thread(target=produce, name="biocodes-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = box.get()
            taken.release()
            if item is _DONE:
                return
            if isinstance(item, _Failed):
                raise item.exc
            yield item
    finally:
        stop.set()
        thread.join()
        close = getattr(items, "close", None)
        if close is not None:
            close()
