"""Keeping the outbox rows a worker is carrying out leased to it while it does.

A round leases the outbox rows it commits to its worker for ``lease``; another worker takes
over rows whose lease ran out (their worker died). A handler that runs longer than the lease
must not be taken over while its worker is alive: a thread renews the leases of the rows being
carried out every ``lease / 3``, until the round that marks them done commits (rows held for
less than that still have two thirds of their lease: they are left for the next tick, so the
usual quick relay costs no write at all). A worker that died renews nothing, so its rows are
taken over as before.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from datetime import timedelta

from sagas.clock import Clock
from sagas.store.base import Store, StoreError

__all__ = ["LeaseKeeper"]

log = logging.getLogger("sagas.engine")


class LeaseKeeper:
    """Renews the leases of the outbox rows a worker holds (by outbox key) in a thread of its
    own, started when the first rows are held."""

    def __init__(self, store: Store, clock: Clock, lease: timedelta) -> None:
        self._store = store
        self._clock = clock
        self._lease = lease
        self._interval = max(lease.total_seconds() / 3, 0.001)
        self._keys: dict[str, float] = {}  # outbox key: since when held (monotonic)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def held(self) -> frozenset[str]:
        """The keys of the rows held now."""
        with self._lock:
            return frozenset(self._keys)

    def _due(self) -> list[str]:
        """The keys held for a tick or longer."""
        since = time.monotonic() - self._interval
        with self._lock:
            return [key for key, held in self._keys.items() if held <= since]

    def hold(self, keys: Iterable[str]) -> None:
        """Keep the rows with ``keys`` leased until :meth:`release`."""
        now = time.monotonic()
        with self._lock:
            for key in keys:
                self._keys.setdefault(key, now)
            if self._thread is None and self._keys and not self._stop.is_set():
                self._thread = threading.Thread(
                    target=self._run, name="sagas-lease-keeper", daemon=True
                )
                self._thread.start()

    def release(self, keys: Iterable[str]) -> None:
        """Stop renewing the rows with ``keys`` (marked done, or given up)."""
        with self._lock:
            for key in keys:
                self._keys.pop(key, None)

    def renew(self) -> int:
        """Extend the lease of every row held for a tick (``lease / 3``) or longer to a full
        ``lease`` from now; returns how many rows were renewed."""
        keys = self._due()
        if not keys:
            return 0
        return self._store.renew_leases(keys, self._clock.now() + self._lease)

    def close(self) -> None:
        """Stop renewing (a worker that stops holds nothing any more)."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.renew()
            except StoreError as exc:
                # The rows stay leased until their lease runs out; the next tick tries again.
                log.warning("could not renew outbox leases: %s", exc)
