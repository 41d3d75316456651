"""Run one function over many items on Dask distributed: a local cluster of worker processes (``--workers N``) or an
existing scheduler (``--cluster tcp://host:port``), each item retried, then reported by name when it still fails.

Items go to the workers in batches (one for slow items, up to 16 for many cheap ones: a task costs a round trip),
submitted in a bounded window (a million-file cohort never sits in the scheduler at once); one progress bar counts
every worker's finished items. Results come back in item order; the content-hash caches the tasks write
stay the single source of truth (their entries are written atomically, so workers racing on one entry are harmless).
"""
from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass

from dask.distributed import Client, LocalCluster, as_completed
from tqdm.auto import tqdm

from medfit.errors import ConfigError, DataError

log = logging.getLogger(__name__)

RETRIES = 2  # a failed item runs up to 3 times (a DataError once); a task whose worker died is rerun as often by Dask
WINDOW_PER_WORKER = 8  # tasks in flight per worker thread
TASKS_PER_THREAD = 8  # batches are sized so that every worker thread gets at least this many tasks
MAX_BATCH = 16  # items per task at most (a lost task costs at most this many items' work)


@dataclass(frozen=True)
class Failure:
    """An item that failed every try: its name (a file), the error type and message."""

    name: str
    kind: str
    message: str

    @property
    def data_error(self) -> bool:
        """A DataError: the item itself is bad (unreadable, inconsistent), not the machine."""
        return self.kind == DataError.__name__

    def line(self) -> str:
        return f"{self.name}: {self.kind}: {self.message}"


def failures_line(failures: list[Failure], total: int, tries: int = RETRIES + 1, shown: int = 3) -> str:
    """One line naming the failed items (the first few, then a count) out of ``total``."""
    more = f" (+{len(failures) - shown} more)" if len(failures) > shown else ""
    tried = "" if all(f.data_error for f in failures) else f" (errors other than DataError after {tries} tries)"
    return f"{len(failures)} of {total} items failed{tried}: " + "; ".join(f.line() for f in failures[:shown]) + more


class Cluster:
    """A Dask client: ``Cluster(workers=N)`` starts a local cluster of N single-threaded worker processes,
    ``Cluster(address="tcp://host:port")`` joins a running scheduler. Use it as a context manager."""

    def __init__(self, workers: int = 1, address: str | None = None, retries: int = RETRIES):
        if workers < 1:
            raise ConfigError(f"--workers {workers}: give at least 1")
        self.workers, self.address, self.retries = workers, address, retries
        self.client: Client | None = None
        self._local: LocalCluster | None = None

    def __enter__(self) -> Cluster:
        if self.address:
            try:
                self.client = Client(self.address, timeout="20s")
            except (OSError, TimeoutError) as exc:
                raise ConfigError(f"--cluster {self.address}: cannot reach the Dask scheduler ({exc}); start one "
                                  "with `dask scheduler` and `dask worker ADDRESS`, or use --workers N") from None
        else:  # processes, one thread each: the ops hold the GIL in places, and one item per core is the unit
            self._local = LocalCluster(n_workers=self.workers, threads_per_worker=1, processes=True,
                                       dashboard_address=None, silence_logs=logging.WARNING)
            self.client = Client(self._local)
        return self

    def __exit__(self, *exc) -> None:
        if self.client is not None:
            self.client.close()
        if self._local is not None:
            self._local.close()

    def failures_line(self, failures: list[Failure], total: int) -> str:
        """One line naming the items that failed every try of this cluster (the first few, then a count)."""
        return failures_line(failures, total, self.retries + 1)

    def threads(self) -> int:
        """Worker threads the scheduler knows of now (at least 1)."""
        return max(1, sum(self.client.nthreads().values())) if self.client else 1

    def batch_size(self, n: int) -> int:
        """Items per task: one for few (slow) items, up to ``MAX_BATCH`` for many, so that a cheap item does not pay
        a task's round trip (milliseconds) and every worker still gets several tasks."""
        return max(1, min(MAX_BATCH, n // (self.threads() * TASKS_PER_THREAD)))

    def map(self, fn: Callable, items: list, names: list[str], desc: str = "items",
            progress: bool = True) -> tuple[list, list[Failure]]:
        """``fn(item)`` for every item on the cluster: results in item order (None for a failure) and the failures,
        by name, in item order."""
        results: list = [None] * len(items)
        failed: dict[int, Failure] = {}
        size = self.batch_size(len(items))
        batches = iter([range(k, min(k + size, len(items))) for k in range(0, len(items), size)])
        task = functools.partial(run_batch, fn, self.retries + 1)
        window = self.threads() * WINDOW_PER_WORKER
        index: dict[str, range] = {}

        def submit(batch: range):
            future = self.client.submit(task, [items[i] for i in batch], retries=self.retries, pure=False)
            index[future.key] = batch
            return future

        running = as_completed([submit(b) for _, b in zip(range(window), batches)], with_results=False)
        with tqdm(total=len(items), desc=desc, disable=not progress, leave=False) as bar:
            for future in running:
                batch = index.pop(future.key)
                if future.status == "finished":
                    outcomes = future.result()
                else:  # the task itself failed every try (a worker lost each time): all its items are named
                    exc = future.exception()
                    outcomes = [(False, type(exc).__name__, _first_line(exc))] * len(batch)
                for i, outcome in zip(batch, outcomes):
                    if outcome[0]:
                        results[i] = outcome[1]
                    else:
                        failed[i] = Failure(names[i], outcome[1], outcome[2])
                        log.warning("failed: %s", failed[i].line())
                future.release()
                bar.update(len(batch))
                nxt = next(batches, None)
                if nxt is not None:
                    running.add(submit(nxt))
        return results, [failed[i] for i in sorted(failed)]


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else ""


def run_batch(fn: Callable, tries: int, items: list) -> list[tuple]:
    """One task: ``fn`` on each item, an item that raises tried again up to ``tries`` times in all (a DataError
    once: the item itself is bad); (True, result) or (False, error type, first line of the message) per item."""
    out: list[tuple] = []
    for item in items:
        for attempt in range(tries):
            try:
                out.append((True, fn(item)))
                break
            except Exception as exc:  # any error of one item is that item's outcome, reported by its name
                if isinstance(exc, DataError) or attempt == tries - 1:
                    out.append((False, type(exc).__name__, _first_line(exc)))
                    break
                log.info("retrying after %s: %s", type(exc).__name__, _first_line(exc))
    return out


def cluster_for(workers: int, address: str | None) -> Cluster | None:
    """The Dask cluster ``--workers`` / ``--cluster`` ask for, or None for the serial path (one worker, no address)."""
    if workers < 1:
        raise ConfigError(f"--workers {workers}: give at least 1")
    return Cluster(workers, address) if workers > 1 or address else None

