"""CLI: poly JSON, sample records, resume after a real kill, chunking invariance, bad input → exit 2."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from polyloss.cli import main
from polyloss.data import linear_teacher
from polyloss.engine import LossEngine
from polyloss.sampling import data_seed, load_run
from polyloss.spec import NetworkSpec, Parametrization
from polyloss.weights import child_seed, sample_weights

SAMPLE = ["sample", "--depth", "2", "--steps", "2", "--d", "6", "--m", "20", "--quiet"]


@pytest.fixture
def files(tmp_path):
    ds = linear_teacher(d=4, m=9, seed=2)
    ds.to_npz(tmp_path / "data.npz")
    w = sample_weights(NetworkSpec(3, 16, 4), Parametrization.preset("mup"), np.random.SeedSequence(1))
    w.to_npz(tmp_path / "net.npz")
    return tmp_path, ds, w


def test_poly_json(files, capsys):
    tmp, ds, w = files
    assert main(["poly", "--data", str(tmp / "data.npz"), "--weights", str(tmp / "net.npz"), "--steps", "2", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema"] == "polyloss.poly/3"
    ref = LossEngine(w, ds, Parametrization.preset("mup")).polynomial(2)
    np.testing.assert_array_equal(doc["loss_coefficients"], ref.loss)
    assert np.array(doc["f_coefficients"]).shape == ref.f.shape
    assert len(doc["loss_coefficients"]) == doc["full_degree"] + 1 == 2 * 3 * 6 + 1
    for key in ("eta_opt", "loss_at_eta_opt", "local_minima", "window", "at_edge"):
        assert key in doc
    assert doc["eta_opt"] in [lm["eta"] for lm in doc["local_minima"]]


def test_poly_text_and_degree(files, capsys):
    tmp, *_ = files
    assert main(["poly", "--data", str(tmp / "data.npz"), "--weights", str(tmp / "net.npz"), "--steps", "3", "--degree", "4"]) == 0
    out = capsys.readouterr().out
    assert "truncated; full degree" in out and "eta_opt" in out


def test_user_weights_path_equals_sampled_path(tmp_path, capsys):
    """`sample` record for (n, s) == `poly` on that network exported to NPZ."""
    run = tmp_path / "run"
    assert main(SAMPLE + ["--widths", "12", "--samples", "2", "--degree", "20", "--out", str(run)]) == 0
    rec = load_run(run).records[1]
    ds = linear_teacher(6, 20, 0.0, data_seed(0))
    ds.to_npz(tmp_path / "d.npz")
    sample_weights(NetworkSpec(2, 12, 6), Parametrization.preset("mup"), child_seed(0, 12, 1)).to_npz(tmp_path / "w.npz")
    capsys.readouterr()
    assert main(["poly", "--data", str(tmp_path / "d.npz"), "--weights", str(tmp_path / "w.npz"), "--steps", "2", "--degree", "20", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["loss_coefficients"] == rec["loss_coefficients"]
    assert doc["eta_opt"] == rec["eta_opt"]


def _strip(records):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in records]


def test_chunking_does_not_change_records(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(SAMPLE + ["--widths", "8,16", "--samples", "4", "--out", str(a)]) == 0
    assert main(SAMPLE + ["--widths", "16", "--samples", "2", "--out", str(b)]) == 0
    assert main(SAMPLE + ["--widths", "8,16", "--samples", "4", "--out", str(b), "--resume"]) == 0
    assert _strip(load_run(a).records) == _strip(load_run(b).records)
    assert len(load_run(a).records) == 8


def test_kill_and_resume_loses_nothing(tmp_path):
    ref, run = tmp_path / "ref", tmp_path / "run"
    args = ["--depth", "3", "--steps", "2", "--d", "10", "--m", "60", "--widths", "96,128", "--samples", "25", "--quiet"]
    assert main(["sample"] + args + ["--out", str(ref)]) == 0
    proc = subprocess.Popen([sys.executable, "-m", "polyloss.cli", "sample"] + args + ["--out", str(run)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    recs = run / "records.jsonl"
    deadline = time.time() + 60
    while time.time() < deadline:
        if recs.exists() and recs.read_bytes().count(b"\n") >= 3:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = recs.read_bytes().count(b"\n")
    with open(recs, "ab") as fh:  # a torn, half-written line, as a kill mid-write leaves
        fh.write(b'{"width": 128, "sample": 3, "loss_coe')
    assert main(["sample"] + args + ["--out", str(run), "--resume"]) == 0
    assert _strip(load_run(run).records) == _strip(load_run(ref).records)
    assert 3 <= killed_at <= 50


def test_existing_run_needs_resume_and_matching_config(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(SAMPLE + ["--widths", "8", "--samples", "1", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(SAMPLE + ["--widths", "8", "--samples", "1", "--out", str(out)]) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(SAMPLE + ["--widths", "8", "--samples", "1", "--out", str(out), "--resume", "--param", "sp"]) == 2
    err = capsys.readouterr().err
    assert "`param`" in err and len(err.strip().splitlines()) == 1


BAD = [
    (["sample", "--depth", "0"], "depth"),
    (["sample", "--widths", "8,x"], "widths"),
    (["sample", "--widths", "0"], "widths"),
    (["sample", "--samples", "-2"], "samples"),
    (["sample", "--steps", "0"], "steps"),
    (["sample", "--param", "xyz"], "param"),
    (["sample", "--d", "0"], "d"),
    (["sample", "--m", "1.5"], "m"),
    (["sample", "--noise", "-1"], "noise"),
    (["sample", "--degree", "-1"], "degree"),
    (["sample", "--window", "0"], "window"),
    (["sample", "--seed", "-1"], "seed"),
    (["sample", "--backend", "tpu"], "backend"),
    (["sample", "--synthetic", "cubic"], "synthetic"),
    (["sample", "--data", "/nonexistent.npz"], "data"),
    (["sample", "--data", "{data}", "--synthetic", "linear"], "synthetic"),
]


@pytest.mark.parametrize("override,name", BAD)
def test_sample_bad_input_exits_2_with_one_line(tmp_path, capsys, files, override, name):
    tmp, *_ = files
    base = {"--depth": "2", "--widths": "8", "--samples": "1", "--steps": "1", "--out": str(tmp_path / "o"), "--quiet": None}
    args = ["sample"]
    over = dict(zip(override[1::2], override[2::2]))
    for k, v in {**base, **over}.items():
        args += [k] if v is None else [k, v.replace("{data}", str(tmp / "data.npz"))]
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and name in err, err


@pytest.mark.parametrize("override,name", [
    ({"--steps": "0"}, "steps"),
    ({"--data": "/nope.npz"}, "data"),
    ({"--weights": "/nope.npz"}, "weights"),
    ({"--window": "-3"}, "window"),
    ({"--degree": "x"}, "degree"),
    ({"--param": "1,2,3"}, "param"),
])
def test_poly_bad_input_exits_2_with_one_line(files, capsys, override, name):
    tmp, *_ = files
    base = {"--data": str(tmp / "data.npz"), "--weights": str(tmp / "net.npz"), "--steps": "1"}
    args = ["poly"] + [x for kv in {**base, **override}.items() for x in kv]
    proc = subprocess.run([sys.executable, "-m", "polyloss.cli"] + args, capture_output=True, text=True)
    assert proc.returncode == 2
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1 and name in err and "Traceback" not in err, err


def test_weights_data_mismatch_is_one_line(files, tmp_path):
    tmp, *_ = files
    linear_teacher(d=5, m=4).to_npz(tmp_path / "d5.npz")
    proc = subprocess.run([sys.executable, "-m", "polyloss.cli", "poly", "--data", str(tmp_path / "d5.npz"),
                           "--weights", str(tmp / "net.npz"), "--steps", "1"], capture_output=True, text=True)
    assert proc.returncode == 2 and "d = 5" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("cmd", ["poly", "sample"])
def test_help_shows_an_example(cmd, capsys):
    with pytest.raises(SystemExit) as exc:
        main([cmd, "--help"])
    assert exc.value.code == 0
    assert "example:" in capsys.readouterr().out


def test_python_dash_m_runs_the_cli_and_keeps_exit_code_2():
    ok = subprocess.run([sys.executable, "-m", "polyloss", "--version"], capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stdout.startswith("polyloss ")
    bad = subprocess.run([sys.executable, "-m", "polyloss", "sample", "--widths", "0"], capture_output=True, text=True)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1


def test_progress_time_left_follows_the_costs(monkeypatch):
    import io

    import polyloss._progress as prog

    now = [0.0]
    monkeypatch.setattr(prog.time, "monotonic", lambda: now[0])
    out = io.StringIO()
    bar = prog.Progress(2, desc="x", stream=out, costs=[1, 100])
    now[0] = 20.0
    bar.update()  # the cheap item took 20 s: the expensive one should take about 2000 s
    assert out.getvalue().splitlines()[-1].endswith(" 1/2   20.0s   2000s left")
    with pytest.raises(ValueError, match="costs"):
        prog.Progress(3, stream=out, costs=[1, 2])


def test_one_seed_widths_print_a_dash_not_nan(tmp_path, capsys):
    """Issue 10: one sample has no standard error; the table printed '± nan'."""
    assert main(SAMPLE[:1] + ["--depth", "2", "--steps", "1", "--d", "5", "--m", "10", "--quiet", "--widths", "8,16",
                              "--samples", "1", "--out", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "nan" not in out and out.count("± –") == 2 * 5


def test_a_reader_that_goes_away_gets_no_traceback(files):
    """`polyloss compare RUN | head` closed the pipe early and printed a BrokenPipeError traceback."""
    tmp, *_ = files
    # 20000 lines, printed one by one: far more than a pipe buffer holds, so the writer hits the closed pipe
    proc = subprocess.Popen([sys.executable, "-m", "polyloss", "poly", "--data", str(tmp / "data.npz"), "--weights",
                             str(tmp / "net.npz"), "--steps", "1", "--eval", "log:0.001:1:20000"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.readline()
    proc.stdout.close()  # the reader is gone; the rest of the output hits a broken pipe
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait(timeout=120) == 141
    assert "Traceback" not in err and "BrokenPipeError" not in err, err


def test_verify_pins_blas_threads_before_numpy_loads(tmp_path):
    """`polyloss verify` in a fresh process: one BLAS thread unless the user chose a count; other commands untouched."""
    import subprocess

    probe = ("import os, sys; from polyloss.cli import main; rc = main(sys.argv[1:]); "
             "print(os.environ.get('OPENBLAS_NUM_THREADS'), os.environ.get('OMP_NUM_THREADS'))")
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    run = lambda args, extra=None: subprocess.run([sys.executable, "-c", probe] + args, env=dict(env, **(extra or {})),  # noqa: E731
                                                  capture_output=True, text=True, timeout=120).stdout.strip().splitlines()[-1]
    assert run(["verify", "--claims", "C99", "--out", str(tmp_path / "v")]) == "1 1"  # refused (exit 2), but pinned first
    assert run(["verify", "--claims", "C99", "--out", str(tmp_path / "v")], {"OMP_NUM_THREADS": "2"}) == "None 2"
    assert run(["data", "--synthetic", "linear", "--d", "2", "--m", "3", "--out", str(tmp_path / "d.npz")]) == "None None"
