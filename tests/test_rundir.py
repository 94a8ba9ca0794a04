"""Run directories: fixed curve grids, repair of a lost newline, one writer at a time, duplicate and
corrupt records, and resumes that top up every width (issue 10, defects 1, 3, 4, 5)."""

import json
import subprocess
import sys
import time

import numpy as np
import pytest

from polyloss._rundir import RunLock, read_records
from polyloss.cli import main
from polyloss.data import linear_teacher
from polyloss.engine import LossEngine
from polyloss.errors import RunError
from polyloss.minimize import minimise, search_grid
from polyloss.sampling import data_seed, load_run
from polyloss.spec import NetworkSpec, Parametrization
from polyloss.weights import child_seed, sample_weights

SAMPLE = ["sample", "--depth", "2", "--steps", "1", "--d", "6", "--m", "20", "--quiet"]


def _records(run):
    return [json.loads(line) for line in (run / "records.jsonl").read_text().splitlines()]


# --- defect 1: curves stay on the fixed grid, whatever the minimiser refines ------------------------

def test_minimiser_curve_is_the_first_stage_grid_even_when_it_refines():
    """A narrow basin between grid points makes the minimiser add points; grid/grid_loss must stay
    the fixed search grid (the oracle's values there), and the narrow minimum must still be found."""
    window = 1.0
    grid = search_grid(window, 96)
    a, b = grid[np.searchsorted(grid, 0.3) - 1: np.searchsorted(grid, 0.3) + 1]
    x0, w = (a + b) / 2, (b - a) / 4.5

    def oracle(etas):
        e = np.asarray(etas, dtype=float)
        g = np.exp(-(((e - x0) / w) ** 2))
        val = (e - 0.7) ** 2 - 0.05 * g
        der = 2 * (e - 0.7) + 0.05 * g * 2 * (e - x0) / w**2
        sec = 2 + 0.05 * g * (2 / w**2 - 4 * (e - x0) ** 2 / w**4)
        return np.stack([val, der, sec / 2], axis=1)

    d = oracle(grid)[:, 1]
    assert np.sum((d[:-1] < 0) & (d[1:] >= 0)) == 1  # the grid alone sees only the minimum at 0.7
    mn = minimise(oracle, window, n_grid=96)
    assert any(abs(lm.eta - x0) < w for lm in mn.local_minima)  # found by refinement
    np.testing.assert_array_equal(mn.grid, grid)
    np.testing.assert_array_equal(mn.grid_loss, oracle(grid)[:, 0])


def test_sample_t2_curves_are_the_stable_loss_on_curve_etas_and_report_runs(tmp_path, capsys):
    """The issue's reproduction: t = 2 runs refine their grids; report used to crash on them."""
    run, rep = tmp_path / "r", tmp_path / "rr"
    assert main(["sample", "--depth", "3", "--widths", "64,128", "--samples", "8", "--steps", "2", "--d", "20",
                 "--m", "100", "--seed", "2", "--quiet", "--out", str(run)]) == 0
    loaded = load_run(run)
    etas = np.array(loaded.config["curve_etas"])
    data = linear_teacher(20, 100, 0.0, data_seed(2))
    mup = Parametrization.preset("mup")
    for rec in loaded.records:
        assert len(rec["curve_loss"]) == etas.size
        # low-order coefficients of a small dense network are certified (helper: engine error bounds)
        assert 1 <= rec["accurate_coefficients"] <= len(rec["loss_coefficients"])
    rec = loaded.records[5]  # independent route: the engine's stable loss on the stored grid
    w = sample_weights(NetworkSpec(3, rec["width"], 20), mup, child_seed(2, rec["width"], rec["sample"]))
    ref = LossEngine(w, data, mup).taylor(etas, 2, order=0)[:, 0]
    # grid points screened by the monomial form are certified to 1e-9 relative (minimize.py), the rest exact
    np.testing.assert_allclose(rec["curve_loss"], ref, rtol=1e-9, atol=0)
    assert main(["report", str(run), "--out", str(rep)]) == 0


# --- defect 3: a complete last line without its newline ---------------------------------------------

def test_resume_keeps_a_final_record_that_lost_its_newline(tmp_path):
    run = tmp_path / "run"
    assert main(SAMPLE + ["--widths", "8", "--samples", "3", "--out", str(run)]) == 0
    path = run / "records.jsonl"
    raw = path.read_bytes()
    assert raw.endswith(b"\n")
    path.write_bytes(raw[:-1])  # killed between the record and its newline
    last = json.loads(raw.splitlines()[-1])
    assert len(load_run(run).records) == 3  # a reader keeps it (and leaves the file alone)
    assert path.read_bytes() == raw[:-1]
    assert main(SAMPLE + ["--widths", "8", "--samples", "5", "--out", str(run), "--resume"]) == 0
    recs = _records(run)
    assert [(r["width"], r["sample"]) for r in recs] == [(8, s) for s in range(5)]
    assert recs[2] == last


def test_a_reader_never_truncates_a_torn_line(tmp_path):
    path = tmp_path / "records.jsonl"
    path.write_bytes(b'{"width": 8, "sample": 0}\n{"width": 8, "sa')
    assert read_records(str(path), required=("width", "sample")) == [{"width": 8, "sample": 0}]
    assert path.read_bytes().endswith(b'"sa')  # a writer may still be writing it
    read_records(str(path), repair=True)
    assert path.read_bytes() == b'{"width": 8, "sample": 0}\n'


# --- defect 4: one process per run directory; duplicates ---------------------------------------------

def test_second_process_on_a_running_directory_is_refused(tmp_path):
    run = tmp_path / "run"
    args = ["--depth", "3", "--steps", "2", "--d", "10", "--m", "60", "--widths", "96,128", "--samples", "40", "--quiet"]
    first = subprocess.Popen([sys.executable, "-m", "polyloss", "sample"] + args + ["--out", str(run)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    recs = run / "records.jsonl"
    deadline = time.time() + 60
    while time.time() < deadline and not (recs.exists() and recs.read_bytes().count(b"\n") >= 2):
        time.sleep(0.01)
    second = subprocess.run([sys.executable, "-m", "polyloss", "sample"] + args + ["--out", str(run), "--resume"],
                            capture_output=True, text=True, timeout=120)
    still_running = first.poll() is None
    _, first_err = first.communicate(timeout=300)
    assert still_running, "the first run finished before the second started; make it longer"
    assert second.returncode == 2
    assert len(second.stderr.strip().splitlines()) == 1 and "in use by polyloss process" in second.stderr
    assert first.returncode == 0, first_err
    keys = [(r["width"], r["sample"]) for r in _records(run)]
    assert len(keys) == len(set(keys)) == 80
    assert main(["sample"] + args + ["--out", str(run), "--resume"]) == 0  # the lock went with the process
    assert len(_records(run)) == 80


def test_lock_is_exclusive_within_a_process_too(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(SAMPLE + ["--widths", "8", "--samples", "1", "--out", str(run)]) == 0
    lock = RunLock(run)
    try:
        assert main(SAMPLE + ["--widths", "8", "--samples", "2", "--out", str(run), "--resume"]) == 2
        assert "in use" in capsys.readouterr().err
    finally:
        lock.release()
    assert main(SAMPLE + ["--widths", "8", "--samples", "2", "--out", str(run), "--resume"]) == 0


def test_duplicate_records_are_kept_once_or_refused(tmp_path):
    run = tmp_path / "run"
    assert main(SAMPLE + ["--widths", "8", "--samples", "2", "--out", str(run)]) == 0
    path = run / "records.jsonl"
    lines = path.read_text().splitlines()
    twin = dict(json.loads(lines[0]), seconds=123.0)  # the same network computed twice
    path.write_text("\n".join(lines + [json.dumps(twin)]) + "\n")
    assert len(load_run(run).records) == 2
    other = dict(json.loads(lines[0]), eta_opt=json.loads(lines[0])["eta_opt"] * 2)
    path.write_text("\n".join(lines + [json.dumps(other)]) + "\n")
    with pytest.raises(RunError, match=r"lines 1 and 3 are two different records for width=8, sample=0"):
        load_run(run)


@pytest.mark.parametrize("line, message", [
    ("[1, 2]", "line 3 is a JSON list"),
    ('{"width": 8}', "line 3 lacks the field `sample`"),
    ('{"width": "8", "sample": 5, "eta_opt": 1, "loss_at_eta_opt": 1, "at_edge": false, "local_minima": [], '
     '"loss_coefficients": [], "curve_loss": []}', r"line 3: `width`='8' is invalid: must be an integer >= 1"),
    ('{"width": 8, "sample": 5, "eta_opt": null, "loss_at_eta_opt": 1, "at_edge": false, "local_minima": [], '
     '"loss_coefficients": [], "curve_loss": []}', r"line 3: `eta_opt`=None is invalid: must be a finite number > 0"),
    ("NaN", "line 3 is a JSON float"),
])
def test_corrupt_records_name_file_and_line(tmp_path, capsys, line, message):
    run = tmp_path / "run"
    assert main(SAMPLE + ["--widths", "8", "--samples", "2", "--out", str(run)]) == 0
    with open(run / "records.jsonl", "a") as fh:
        fh.write(line + "\n")
    with pytest.raises(RunError, match=message):
        load_run(run)
    capsys.readouterr()
    assert main(["compare", str(run)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "records.jsonl" in err


@pytest.mark.parametrize("text, message", [
    ("[1]", "a JSON list, expected an object"),
    ("\x89PNG\x00\x01", "not UTF-8 text"),
    ('{"schema": "polyloss.sample/1", ', "not valid JSON"),
    ('{"schema": "polyloss.sample/1"}', "lacks `depth`"),
])
def test_corrupt_config_is_named(tmp_path, text, message):
    run = tmp_path / "run"
    assert main(SAMPLE + ["--widths", "8", "--samples", "1", "--out", str(run)]) == 0
    (run / "run.json").write_bytes(text.encode("latin-1"))
    with pytest.raises(RunError, match=message):
        load_run(run)


# --- defect 5: a resume that adds widths tops up every width -----------------------------------------

def test_resume_adding_widths_tops_up_old_widths(tmp_path):
    run, ref = tmp_path / "run", tmp_path / "ref"
    assert main(SAMPLE + ["--widths", "8", "--samples", "2", "--out", str(run)]) == 0
    assert main(SAMPLE + ["--widths", "16", "--samples", "3", "--out", str(run), "--resume"]) == 0
    loaded = load_run(run)
    assert loaded.config["widths"] == [8, 16] and loaded.config["samples"] == 3
    counts = {n: len(r) for n, r in loaded.by_width().items()}
    assert counts == {8: 3, 16: 3}
    assert main(SAMPLE + ["--widths", "8,16", "--samples", "3", "--out", str(ref)]) == 0
    strip = lambda recs: [{k: v for k, v in r.items() if k != "seconds"} for r in recs]  # noqa: E731
    assert strip(loaded.records) == strip(load_run(ref).records)


def test_sweep_resume_adding_widths_tops_up_old_widths(tmp_path):
    run = tmp_path / "sweep"
    base = ["sweep", "--depth", "2", "--steps", "1", "--d", "6", "--m", "20", "--etas", "log:0.01:1:5", "--quiet"]
    assert main(base + ["--widths", "8", "--seeds", "1", "--out", str(run)]) == 0
    assert main(base + ["--widths", "16", "--seeds", "2", "--out", str(run), "--resume"]) == 0
    keys = sorted((r["width"], r["sample"]) for r in _records(run))
    assert keys == [(8, 0), (8, 1), (16, 0), (16, 1)]


# --- defect 7: run.json stores the data file's absolute path and digest ------------------------------

def test_data_file_is_found_from_another_directory_and_failures_are_named(tmp_path, monkeypatch, capsys):
    made, elsewhere = tmp_path / "made", tmp_path / "elsewhere"
    made.mkdir()
    elsewhere.mkdir()
    linear_teacher(d=5, m=15, seed=3).to_npz(made / "data.npz")
    monkeypatch.chdir(made)
    assert main(["sample", "--depth", "1", "--steps", "1", "--widths", "8,16,32", "--samples", "3", "--data", "data.npz",
                 "--quiet", "--out", "run"]) == 0
    cfg = json.loads((made / "run" / "run.json").read_text())
    assert cfg["data"]["path"] == str(made / "data.npz")
    monkeypatch.chdir(elsewhere)
    capsys.readouterr()
    assert main(["compare", str(made / "run")]) == 0
    assert main(["report", str(made / "run"), "--out", "rep"]) == 0
    assert "no comparison" not in capsys.readouterr().err
    runs = json.loads((elsewhere / "rep" / "report.json").read_text())["runs"]
    assert all("compare" in entry for entry in runs.values())  # the limit is there, not dropped
    ds = linear_teacher(d=5, m=15, seed=4)
    ds.to_npz(made / "data.npz")  # same name, other content
    assert main(["compare", str(made / "run")]) == 2
    assert "exists but its content changed" in capsys.readouterr().err
    assert main(["report", str(made / "run"), "--out", "rep2"]) == 0
    assert "no comparison with the exact limit" in capsys.readouterr().err  # report says why the limit is missing
    (made / "data.npz").unlink()
    assert main(["compare", str(made / "run")]) == 2
    assert "no longer exists" in capsys.readouterr().err


@pytest.mark.parametrize("edit, message", [
    (lambda cfg: cfg.update(param="mup"), r"`param`='mup' is invalid"),
    (lambda cfg: cfg.update(param={"name": "mup", "alpha": "x", "gamma": "0"}), r"`param`=.* is invalid"),
    (lambda cfg: cfg.update(data=None), r"`data`=None is invalid"),
    (lambda cfg: cfg.update(degree=2), r"has \d+ loss coefficients, run.json's degree 2 needs 3"),
    (lambda cfg: cfg.update(widths=[]), r"`widths`=\[\] is invalid"),
])
def test_corrupt_config_values_are_refused_by_every_reader(tmp_path, capsys, edit, message):
    run = tmp_path / "run"
    assert main(SAMPLE + ["--widths", "8", "--samples", "2", "--out", str(run)]) == 0
    cfg = json.loads((run / "run.json").read_text())
    edit(cfg)
    (run / "run.json").write_text(json.dumps(cfg))
    with pytest.raises(RunError, match=message):
        load_run(run)
    capsys.readouterr()
    for argv in (["compare", str(run)], ["report", str(run), "--out", str(tmp_path / "rep")]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "run.json" in err, err


def test_records_or_config_that_are_directories_are_refused(tmp_path):
    run = tmp_path / "run"
    assert main(SAMPLE + ["--widths", "8", "--samples", "1", "--out", str(run)]) == 0
    (run / "records.jsonl").unlink()
    (run / "records.jsonl").mkdir()
    with pytest.raises(RunError, match="records.jsonl is not a file"):
        load_run(run)
    (run / "records.jsonl").rmdir()
    (run / "run.json").unlink()
    (run / "run.json").mkdir()
    with pytest.raises(RunError, match="no run.json file"):
        load_run(run)


def test_report_refuses_an_explicit_derivation_it_cannot_use(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(SAMPLE + ["--widths", "8", "--samples", "1", "--out", str(run)]) == 0
    bad = tmp_path / "lim.json"
    bad.write_text(json.dumps({"schema": "polyloss.sample/1"}))
    capsys.readouterr()
    assert main(["report", str(run), "--out", str(tmp_path / "rep"), "--derivation", str(bad)]) == 2
    assert "expected 'polyloss.derivation/1'" in capsys.readouterr().err
