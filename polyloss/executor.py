"""Where the independent units of a run are computed: in this process (serial) or on Dask workers.

One small layer shared by the run loops (``sample`` so far). The driver — the process that holds
the run directory's lock — alone writes records; an executor only computes. :func:`resolve_executor`
turns the user's choice into an executor:

* ``None`` / ``"serial"`` — :class:`SerialExecutor`: the units one after another, in order, in this
  process (the default; exactly the loop polyloss always ran);
* an int N or ``"auto"`` (= ``os.cpu_count()``) — a ``distributed.LocalCluster`` of N worker
  processes, one thread each, on loopback, closed when the run ends;
* ``"tcp://HOST:PORT"`` (``--scheduler``) — a ``distributed.Client`` on an existing scheduler
  (``dask scheduler`` / ``dask worker``, or dask-jobqueue on SLURM); left running afterwards;
* a ``distributed.Client`` — used as is, never closed.

:meth:`DaskExecutor.map_unordered` submits the tasks (most expensive first) and yields each task's
result as it completes; a task lost with a killed worker is rerun by the scheduler and its result
still arrives once (callers key what they write, so nothing is written twice). BLAS runs one thread
per worker: local workers get ``OMP/OPENBLAS/MKL_NUM_THREADS=1`` before numpy loads (Dask's nanny
also sets them by default for ``dask worker``).

Dask and distributed are optional: ``pip install "polyloss[distributed]"``.
"""

from __future__ import annotations

import os
import uuid

from polyloss.errors import PolylossError, SpecError, invalid

__all__ = ["SerialExecutor", "DaskExecutor", "resolve_executor", "check_executor", "batches", "MissingExtra", "INSTALL_HINT",
           "BLAS_ENV"]

INSTALL_HINT = 'pip install "polyloss[distributed]"'
#: One BLAS thread per worker process: workers must not oversubscribe the cores.
BLAS_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
_VALID = "None or 'serial', a number of local workers >= 1, 'auto', a scheduler address 'tcp://HOST:PORT', or a distributed.Client"


class MissingExtra(PolylossError, ImportError):
    """Dask/distributed are not installed."""


def _distributed():
    try:
        import distributed  # noqa: F401  (also imports dask)
    except ImportError:
        raise MissingExtra(f"parallel runs (--workers/--scheduler, executor=) need Dask: {INSTALL_HINT}") from None
    return distributed


class SerialExecutor:
    """Every task in this process, in the order given (batch_seconds 0: one unit per task)."""

    name = "serial"
    workers = 1
    batch_seconds = 0.0

    def map_unordered(self, fn, tasks, costs=None, label="task", shared=None):
        for task in tasks:
            yield fn(task) if shared is None else fn(shared, task)

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


class DaskExecutor:
    """Tasks on a Dask cluster through ``client``; ``own`` (a LocalCluster made here) is closed with it."""

    name = "dask"
    #: group units into tasks of at least this many estimated seconds (per-task overhead is ~ms)
    batch_seconds = 0.5

    def __init__(self, client, cluster=None):
        self.client, self._cluster = client, cluster

    @property
    def workers(self) -> int:
        try:
            return max(1, len(self.client.scheduler_info().get("workers", {})))
        except Exception:  # pragma: no cover - an unreachable scheduler is reported by the run itself
            return 1

    def map_unordered(self, fn, tasks, costs=None, label="task", shared=None):
        """Yield ``fn(shared, task)`` (``fn(task)`` without ``shared``) for every task, as each completes.

        ``costs``: estimated cost per task; the dearest are submitted first (the scheduler runs them
        in submission order), so the last task to finish is a cheap one. ``shared``: one object every
        task needs (the data): sent once, as a task (which the scheduler can recompute if every worker
        holding it dies), and copied to every worker before the tasks are submitted — held by one
        worker only, it would draw every task to that worker.
        Leaving the generator early (an error, an interrupt) cancels the tasks not yet done."""
        from distributed import as_completed, wait

        tasks = list(tasks)
        order = sorted(range(len(tasks)), key=lambda i: -costs[i]) if costs is not None else range(len(tasks))
        run = f"polyloss-{label}-{uuid.uuid4().hex[:12]}"
        common = []
        if shared is not None:  # on every worker before the tasks are placed: no worker is preferred for it
            common = [self.client.submit(_identity, shared, key=f"{run}-shared", pure=False)]
            wait(common)
            self.client.replicate(common)
        futures = [self.client.submit(fn, *common, tasks[i], key=f"{run}-{i}", pure=False) for i in order]
        try:
            for fut in as_completed(futures):
                yield fut.result()
                fut.release()
        finally:
            self.client.cancel(futures + common)

    def close(self) -> None:
        if self._cluster is not None:
            self.client.close()
            self._cluster.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def _identity(x):
    return x


def batches(units, seconds, target: float, workers: int = 1):
    """Consecutive ``units`` grouped into tasks of at least ``target`` estimated seconds each (0: one
    unit per task), but about four tasks per worker at least where there are that many units (so that
    an estimate that is off by a factor does not leave a worker idle at the end of a small run);
    returns (tasks as tuples, estimated seconds per task). ``seconds``: the estimate per unit."""
    if target > 0 and workers > 1:
        target = min(target, sum(seconds) / (4 * workers))
    tasks, costs, cur, acc = [], [], [], 0.0
    for unit, sec in zip(units, seconds):
        cur.append(unit)
        acc += sec
        if acc >= target:
            tasks.append(tuple(cur))
            costs.append(acc)
            cur, acc = [], 0.0
    if cur:
        tasks.append(tuple(cur))
        costs.append(acc)
    return tasks, costs


def local_workers(spec) -> int | None:
    """The number of local workers ``spec`` asks for (an int >= 1, 'auto', or its text), else None."""
    if isinstance(spec, bool):
        return None
    if isinstance(spec, int):
        return spec if spec >= 1 else None
    if isinstance(spec, str):
        s = spec.strip()
        if s == "auto":
            return os.cpu_count() or 1
        if s.isascii() and s.isdigit() and int(s) >= 1:
            return int(s)
    return None


def local_cluster(n_workers: int, silence_logs: int = 40):
    """A ``distributed.LocalCluster`` of ``n_workers`` processes with one thread each, on loopback.

    Workers start with :data:`BLAS_ENV` and without ``MALLOC_TRIM_THRESHOLD_``: Dask's default sets
    it, which turns off glibc's adaptive mmap threshold, so every temporary array > 128 KiB is
    mmap'ed and faulted in anew (measured: +20% CPU per record at n = 512, benchmarks/RESULTS.md).
    The nanny sets its variables in this process's environment to spawn the workers; the
    environment is restored afterwards (a killed worker is restarted with the restored one)."""
    distributed = _distributed()
    import dask

    saved = dict(os.environ)
    os.environ.pop("MALLOC_TRIM_THRESHOLD_", None)
    try:
        with dask.config.set({"distributed.nanny.pre-spawn-environ": dict(BLAS_ENV)}):
            return distributed.LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                                            host="127.0.0.1", dashboard_address=":0", silence_logs=silence_logs,
                                            env=dict(BLAS_ENV))
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _kind(spec) -> str:
    """'serial', 'local', 'address' or 'client' for a valid ``spec``; a one-line error otherwise."""
    if spec is None or (isinstance(spec, str) and spec == "serial"):
        return "serial"
    if local_workers(spec) is not None:
        return "local"
    if isinstance(spec, str) and "://" in spec and spec.split("://", 1)[1].strip():
        return "address"
    if type(spec).__name__ == "Client" and type(spec).__module__.startswith("distributed"):
        return "client"
    raise invalid("executor", spec, _VALID)


def check_executor(spec) -> None:
    """Refuse a malformed ``spec``, or one that needs Dask when it is not installed (one line each)."""
    if _kind(spec) in ("local", "address"):
        _distributed()


def resolve_executor(spec):
    """An executor (a context manager) for ``spec`` (see the module docstring); one-line errors."""
    kind = _kind(spec)
    if kind == "serial":
        return SerialExecutor()
    if kind == "client":
        return DaskExecutor(spec)
    distributed = _distributed()
    if kind == "local":
        cluster = local_cluster(local_workers(spec))
        return DaskExecutor(distributed.Client(cluster), cluster)
    try:
        client = distributed.Client(spec, timeout="10s")
    except (OSError, TimeoutError, ValueError) as exc:
        raise SpecError(f"cannot reach the Dask scheduler at {spec!r} ({type(exc).__name__}: {exc}); start one "
                        "with `dask scheduler` and workers with `dask worker ADDRESS`") from None
    return DaskExecutor(client, cluster=_Disconnect(client))


class _Disconnect:
    """Closing a client made for ``--scheduler`` disconnects; the cluster keeps running."""

    def __init__(self, client):
        self.client = client

    def close(self) -> None:
        pass
