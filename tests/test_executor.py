"""Executors (issue 13): `sample` and `sweep` on Dask workers write the records the serial loop writes.

One LocalCluster (2 worker processes, loopback) serves the module; the tests compare records with
a serial run field for field (apart from ``seconds``), whatever the completion order, after a
worker is killed mid-run, after the driver is interrupted and resumed with workers, through
``--scheduler``, and check the one-line errors (bad values, the extra not installed).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

import pytest

import polyloss._rundir as rundir
from polyloss import api
from polyloss.cli import main
from polyloss.data import linear_teacher
from polyloss.errors import SpecError
from polyloss.executor import INSTALL_HINT, MissingExtra, local_cluster, resolve_executor
from polyloss.executor import batches as _batches
from polyloss.sampling import load_run
from polyloss.sweep import load_sweep

distributed = pytest.importorskip("distributed", reason='the test extra installs it: pip install ".[test]"')

DATA = linear_teacher(d=6, m=20, noise=0.1, seed=5)
CLI = ["sample", "--depth", "2", "--steps", "2", "--d", "6", "--m", "20", "--seed", "3", "--quiet"]


@pytest.fixture(scope="module")
def client():
    cluster = local_cluster(2, silence_logs=50)
    c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()


@pytest.fixture
def killable():
    """A cluster of its own for the tests that SIGKILL a worker: its nanny's restart (seconds, or a minute on
    a loaded machine) must not leave the shared cluster short of a worker for the tests after it."""
    cluster = local_cluster(2, silence_logs=50)
    c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()


def _sample(out, executor=None, widths=(8, 16, 32), samples=6, sampler="auto", steps=2, resume=False):
    return api.sample(out, depth=2, sampling={"widths": list(widths), "samples": samples, "seed": 3}, training=steps,
                      data=DATA, sampler=sampler, progress=False, resume=resume, executor=executor)


def _strip(run) -> list:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in run.records]


def _raw_keys(out) -> list:
    with open(os.path.join(out, rundir.RECORDS)) as fh:
        return [(r["width"], r["sample"]) for r in map(json.loads, fh)]


@pytest.mark.parametrize("sampler, widths", [("dense", (8, 16, 32)), ("lazy", (16, 64))])
def test_workers_write_the_serial_records(client, tmp_path, sampler, widths):
    serial = _sample(tmp_path / "serial", sampler=sampler, widths=widths)
    dask = _sample(tmp_path / "dask", client, sampler=sampler, widths=widths)
    assert _strip(dask) == _strip(serial)  # bit-identical: JSON floats compared exactly
    assert {r["sampler"] for r in dask.records} == {sampler}
    keys = _raw_keys(tmp_path / "dask")
    assert len(keys) == len(set(keys)) == len(widths) * 6
    with open(tmp_path / "serial" / "run.json") as a, open(tmp_path / "dask" / "run.json") as b:
        assert json.load(a) == json.load(b)  # the executor is not part of the run


def test_growing_horizon_on_workers(client, tmp_path):
    serial = _sample(tmp_path / "serial", steps={"steps": "8:1,16:2"}, widths=(8, 16), samples=3)
    dask = _sample(tmp_path / "dask", client, steps={"steps": "8:1,16:2"}, widths=(8, 16), samples=3)
    assert _strip(dask) == _strip(serial)
    assert {r["steps"] for r in dask.records} == {1, 2}


def test_batches_reach_the_target():
    units = list(range(10))
    tasks, costs = _batches(units, [0.2] * 10, 0.5)
    assert [len(t) for t in tasks] == [3, 3, 3, 1] and sum(tasks, ()) == tuple(units)
    assert all(c >= 0.5 for c in costs[:-1])
    assert [len(t) for t in _batches(units, [0.2] * 10, 0.0)[0]] == [1] * 10  # serial: one record per task
    small = _batches(units, [0.01] * 10, 0.5, workers=2)[0]  # a small run: ~4 tasks per worker, every unit once
    assert len(small) == 5 and sum(small, ()) == tuple(units)


def test_killed_worker_gives_a_complete_duplicate_free_run(killable, tmp_path, monkeypatch):
    client = killable
    serial = _sample(tmp_path / "serial", widths=(32, 64), samples=40)  # ~2 s: several tasks of ~0.5 s
    killed = []
    write = rundir.RecordWriter.write

    def write_and_kill(self, rec):
        write(self, rec)
        if not killed:  # after the first record a worker computes a task: SIGKILL it
            busy = [a for a, keys in client.processing().items() if keys]
            if busy:
                pid = client.run(os.getpid, workers=[busy[0]])[busy[0]]
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)

    monkeypatch.setattr(rundir.RecordWriter, "write", write_and_kill)
    dask = _sample(tmp_path / "dask", client, widths=(32, 64), samples=40)
    assert killed, "no worker was busy while records arrived"
    assert _strip(dask) == _strip(serial)
    keys = _raw_keys(tmp_path / "dask")
    assert len(keys) == len(set(keys)) == 80


def test_interrupted_driver_resumes_with_workers(client, tmp_path, monkeypatch):
    args = CLI + ["--widths", "8,16,32", "--samples", "8"]
    assert main(args + ["--out", str(tmp_path / "serial")]) == 0
    write, count = rundir.RecordWriter.write, []

    def write_then_interrupt(self, rec):
        write(self, rec)
        count.append(1)
        if len(count) == 5:
            raise KeyboardInterrupt

    monkeypatch.setattr(rundir.RecordWriter, "write", write_then_interrupt)
    out = tmp_path / "run"
    assert main(args + ["--out", str(out), "--scheduler", client.scheduler.address]) == 130  # interrupted
    monkeypatch.setattr(rundir.RecordWriter, "write", write)
    assert len(_raw_keys(out)) == 5
    deadline = time.monotonic() + 120  # the interrupted run's tasks are cancelled (slow on a loaded machine)
    while any(client.processing().values()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(client.processing().values())
    # the CLI, with its own LocalCluster of 2 workers, finishes the run
    assert main(args + ["--out", str(out), "--resume", "--workers", "2"]) == 0
    assert _strip(load_run(out)) == _strip(load_run(tmp_path / "serial"))
    keys = _raw_keys(out)
    assert len(keys) == len(set(keys)) == 24


def test_scheduler_address(client, tmp_path, capsys):
    serial = tmp_path / "serial"
    assert main(CLI + ["--widths", "8,16", "--samples", "4", "--out", str(serial)]) == 0
    address = client.scheduler.address
    assert main(CLI + ["--widths", "8,16", "--samples", "4", "--out", str(tmp_path / "dask"), "--scheduler", address]) == 0
    assert _strip(load_run(tmp_path / "dask")) == _strip(load_run(serial))
    assert client.status == "running" and len(client.scheduler_info()["workers"]) == 2  # the cluster is left running


def test_local_workers_pin_blas_and_match_serial(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "4")
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")  # as a cluster made with Dask's defaults leaves it
    before = dict(os.environ)
    with resolve_executor(1) as ex:
        env = ex.client.run(lambda: [os.environ.get(v) for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                                 "MKL_NUM_THREADS", "MALLOC_TRIM_THRESHOLD_")])
        assert list(env.values()) == [["1", "1", "1", None]]  # Dask's malloc trimming costs ~20% here
        dask = _sample(tmp_path / "dask", ex.client, widths=(8,), samples=3)
        assert dict(os.environ) == before  # the driver's environment is left as it was
    assert _strip(dask) == _strip(_sample(tmp_path / "serial", widths=(8,), samples=3))


@pytest.mark.parametrize("extra, message", [
    (["--workers", "0"], "`workers`='0' is invalid: must be an integer >= 1 or 'auto'"),
    (["--workers", "many"], "`workers`='many' is invalid"),
    (["--workers", "2", "--scheduler", "tcp://127.0.0.1:8786"], "not allowed with argument"),
    (["--scheduler", "tcp://"], "`scheduler`='tcp://' is invalid"),
])
def test_bad_executor_options(tmp_path, capsys, extra, message):
    assert main(CLI + ["--widths", "8", "--samples", "1", "--out", str(tmp_path / "r")] + extra) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("bad", [0, -1, True, 2.5, "bogus", "tcp://", object()])
def test_bad_executor_argument(tmp_path, bad):
    with pytest.raises(SpecError, match="`executor`="):
        _sample(tmp_path / "r", bad)
    assert not (tmp_path / "r").exists()


def test_missing_extra_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # `import distributed` raises ImportError
    for extra in (["--workers", "2"], ["--workers", "auto"], ["--scheduler", "tcp://127.0.0.1:8786"]):
        assert main(CLI + ["--widths", "8", "--samples", "1", "--out", str(tmp_path / "r")] + extra) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and INSTALL_HINT in err and err.startswith("polyloss sample: error:")
    with pytest.raises(MissingExtra, match="polyloss\\[distributed\\]"):
        _sample(tmp_path / "r", 2)
    assert not (tmp_path / "r").exists()
    assert len(_sample(tmp_path / "serial", "serial", widths=(8,), samples=1).records) == 1  # serial needs no Dask


def _sweep(out, executor=None, resume=False, **kw):
    opts = dict(depth=2, widths=[8, 16, 32], etas="lin:0.05:2:12", seeds=3, steps=3, seed=3)
    opts.update(kw)
    return api.sweep(out, data=DATA, progress=False, resume=resume, executor=executor, **opts)


@pytest.mark.parametrize("opts", [
    {},  # linear GD, low rank where it applies
    {"method": "dense", "activation": "relu"},
    {"optimizer": "adam", "activation": "relu"},
    {"recipe": {"trained": "input,hidden,readout", "weight_decay": "0.1", "wd_mode": "independent", "momentum": "0.5"}},
    {"batch": 7, "activation": "relu", "init_gain": "he"},
    {"alignment": True, "optimizer": "adam"},
], ids=["linear-gd", "relu-dense", "relu-adam", "recipe", "minibatch-he", "alignment"])
def test_sweep_on_workers_writes_the_serial_records(client, tmp_path, opts):
    serial = _sweep(tmp_path / "serial", **opts)
    dask = _sweep(tmp_path / "dask", client, **opts)
    assert _strip(dask) == _strip(serial)  # losses compared exactly (JSON floats)
    keys = _raw_keys(tmp_path / "dask")
    assert len(keys) == len(set(keys)) == 9
    with open(tmp_path / "serial" / "run.json") as a, open(tmp_path / "dask" / "run.json") as b:
        assert json.load(a) == json.load(b)


def test_sweep_killed_worker_and_resumed_driver(killable, tmp_path, monkeypatch):
    """A worker SIGKILLed mid-run, then the driver interrupted and resumed with workers: the serial records, once each."""
    client = killable
    opts = dict(widths=[64, 128], seeds=12, etas="lin:0.05:2:40", steps=4, method="dense")
    serial = _sweep(tmp_path / "serial", **opts)
    write, count, killed = rundir.RecordWriter.write, [], []

    def write_kill_interrupt(self, rec):
        write(self, rec)
        count.append(1)
        if not killed:
            busy = [a for a, keys in client.processing().items() if keys]
            if busy:
                pid = client.run(os.getpid, workers=[busy[0]])[busy[0]]
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
        if len(count) == 12:
            raise KeyboardInterrupt

    monkeypatch.setattr(rundir.RecordWriter, "write", write_kill_interrupt)
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        _sweep(out, client, **opts)
    monkeypatch.setattr(rundir.RecordWriter, "write", write)
    assert killed, "no worker was busy while records arrived"
    assert len(_raw_keys(out)) == 12
    client.wait_for_workers(1, timeout=120)  # the survivor (and the restarted worker, whenever it is back)
    resumed = _sweep(out, client, resume=True, **opts)
    assert _strip(resumed) == _strip(serial)
    keys = _raw_keys(out)
    assert len(keys) == len(set(keys)) == 24


def test_sweep_cli_workers(tmp_path):
    args = ["sweep", "--depth", "1", "--widths", "8,16", "--etas", "lin:0.1:1:5", "--seeds", "2", "--steps", "2",
            "--d", "6", "--m", "20", "--quiet"]
    assert main(args + ["--out", str(tmp_path / "serial")]) == 0
    assert main(args + ["--out", str(tmp_path / "dask"), "--workers", "1"]) == 0
    assert _strip(load_sweep(tmp_path / "dask")) == _strip(load_sweep(tmp_path / "serial"))


@pytest.mark.parametrize("extra", [["--workers", "0"], ["--scheduler", "tcp://"]])
def test_sweep_bad_executor_options(tmp_path, capsys, extra):
    args = ["sweep", "--depth", "1", "--widths", "8", "--etas", "lin:0.1:1:5", "--steps", "2", "--d", "6", "--m", "20",
            "--out", str(tmp_path / "r")]
    assert main(args + extra) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and ("`workers`='0' is invalid" in err or "`scheduler`='tcp://' is invalid" in err)
    assert not (tmp_path / "r").exists()


def _verdict(path) -> dict:
    with open(path) as fh:
        doc = json.load(fh)
    doc.pop("runtime_s")
    return doc


def test_verify_on_workers_gives_the_serial_verdicts(client, tmp_path):
    """C1 (its own per-network loop, a closure pickled to the workers) and C3 (a sample run): same verdict files."""
    from polyloss.checks import run_claims

    for out, ex in (("serial", None), ("dask", client)):
        run_claims(["C1", "C3"], "quick", str(tmp_path / out), progress=False, write_report=False, executor=ex)
    for cid in ("C1", "C3"):
        assert _verdict(tmp_path / "dask" / "verdicts" / f"{cid}.json") == _verdict(tmp_path / "serial" / "verdicts" / f"{cid}.json")
    for run in ("C1-t1", "C3-sp"):
        keys = _raw_keys(tmp_path / "dask" / "runs" / run)
        assert len(keys) == len(set(keys)) and sorted(keys) == sorted(_raw_keys(tmp_path / "serial" / "runs" / run))


def test_context_sweep_and_networks_on_workers(client, tmp_path):
    from polyloss.checks import Context

    offset = 0.5  # a closure over a local and the context: travels by value

    def compute(n, s):
        return {"v": n + s + offset + ctx.seed}

    out = {}
    for name, ex in (("serial", None), ("dask", resolve_executor(client))):
        ctx = Context("quick", str(tmp_path / name), progress=False, executor=ex)
        recs = ctx.networks("N", param="mup", widths=(8, 16), samples=3, config={}, compute=compute)
        sw = ctx.sweep("S", depth=1, widths=(8, 16), seeds=2, steps=2, etas="lin:0.1:1:6", activation="relu",
                       optimizer="gd", param="mup")
        recs = {n: [{k: v for k, v in r.items() if k != "seconds"} for r in rs] for n, rs in recs.items()}
        out[name] = (recs, _strip(sw))
    assert out["dask"] == out["serial"]
    assert out["dask"][0][16][2] == {"width": 16, "sample": 2, "v": 18.5}


def test_verify_cli_executor_errors(tmp_path, capsys, monkeypatch):
    assert main(["verify", "--claims", "C1", "--out", str(tmp_path / "v"), "--workers", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "`workers`='0' is invalid" in err
    monkeypatch.setitem(sys.modules, "distributed", None)
    assert main(["verify", "--claims", "C1", "--out", str(tmp_path / "v"), "--workers", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and INSTALL_HINT in err
    assert not (tmp_path / "v").exists()


def test_eta_pieces():
    from polyloss.sweep import _eta_pieces

    todo, secs = [(8, 0), (8, 1), (512, 0)], [0.1, 0.1, 8.0]
    units, est = _eta_pieces(todo, secs, 30, 0.5, 2)  # piece = max(0.5, 8.2 / 8) = 1.025 s: 8 pieces of the big one
    assert units[:2] == [(8, 0, 0, 30), (8, 1, 0, 30)]
    big = [u for u in units if u[0] == 512]
    assert len(big) == 8 and big[0][2] == 0 and big[-1][3] == 30
    assert all(a[3] == b[2] for a, b in zip(big, big[1:]))  # contiguous, covering the grid once
    assert sum(est) == pytest.approx(sum(secs))
    assert _eta_pieces(todo, secs, 30, 0.0, 1)[0] == [(8, 0, 0, 30), (8, 1, 0, 30), (512, 0, 0, 30)]  # serial: whole grids
    assert len(_eta_pieces([(512, 0)], [100.0], 3, 0.5, 64)[0]) == 3  # at most one eta per piece


def test_sweep_split_grids_give_the_serial_records(client, tmp_path, monkeypatch):
    """Grids cut into pieces on different workers and reassembled: the serial records, bit for bit."""
    import polyloss.executor as executor
    import polyloss.sweep as sweep

    seen = []
    pieces = sweep._eta_pieces
    monkeypatch.setattr(sweep, "_eta_pieces", lambda *a: seen.append(pieces(*a)) or seen[-1])
    monkeypatch.setattr(executor.DaskExecutor, "batch_seconds", 1e-4)  # tiny pieces: every grid is cut
    opts = dict(widths=[16, 64], seeds=2, etas="lin:0.05:3:25", steps=3, activation="relu", optimizer="adam",
                alignment=True)
    serial = _sweep(tmp_path / "serial", **opts)
    dask = _sweep(tmp_path / "dask", client, **opts)
    assert len(seen[-1][0]) > 8  # more pieces than networks
    assert _strip(dask) == _strip(serial)
    keys = _raw_keys(tmp_path / "dask")
    assert len(keys) == len(set(keys)) == 4


def test_adam_sample_on_workers(client, tmp_path):
    """The first Adam step (api.sample(optimizer='adam')) on workers: the serial records."""
    kw = dict(depth=2, sampling={"widths": [8, 32], "samples": 3, "seed": 3}, training=1, data=DATA, progress=False,
              optimizer="adam", adam_eps=1e-8)
    serial = api.sample(tmp_path / "serial", **kw)
    dask = api.sample(tmp_path / "dask", executor=client, **kw)
    assert _strip(dask) == _strip(serial) and {r["optimizer"] for r in dask.records} == {"adam"}
    assert dask.config["optimizer"]["eps"] == 1e-8


def test_driver_sigkill_with_workers_then_resume(client, tmp_path):
    """kill -9 of the driver while Dask workers compute: every record it had written survives (fsync'ed, no torn
    line kept), the lock of the dead process is taken over, and --resume on the cluster finishes the serial run."""
    import subprocess

    args = ["sweep", "--depth", "2", "--widths", "64,128", "--seeds", "10", "--etas", "lin:0.05:2:40", "--steps", "6",
            "--method", "dense", "--d", "6", "--m", "20", "--seed", "3", "--quiet"]
    assert main(args + ["--out", str(tmp_path / "serial")]) == 0
    out = tmp_path / "run"
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "polyloss"] + args + ["--out", str(out), "--scheduler",
                            client.scheduler.address], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    records = out / rundir.RECORDS
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if records.exists() and len(records.read_bytes().splitlines()) >= 3:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    written = len(_raw_keys(out))
    assert 3 <= written < 20
    assert main(args + ["--out", str(out), "--resume", "--scheduler", client.scheduler.address]) == 0
    assert _strip(load_sweep(out)) == _strip(load_sweep(tmp_path / "serial"))
    keys = _raw_keys(out)
    assert len(keys) == len(set(keys)) == 20
