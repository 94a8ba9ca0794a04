"""``polyloss data``: the files it writes are exactly what runs use, and bad input exits 2 in one line.

Reference routes are independent of the command: the seed conventions stated in README
(``SeedSequence(S, spawn_key=(0,))`` for data, ``SeedSequence(S, spawn_key=(n, k))`` for networks,
draw order W_0, W_1..W_L, V) drawn here by hand, and the records a ``sample`` run wrote.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from polyloss.cli import main
from polyloss.data import load_data, synthetic
from polyloss.weights import load_weights


def _run(argv, capsys):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def _ok(argv, capsys):
    rc, out, err = _run(argv, capsys)
    assert rc == 0, err
    return out


def test_synthetic_data_is_the_runs_data_bit_for_bit(tmp_path, capsys):
    opts = ["--synthetic", "nonlinear", "--d", "6", "--m", "20", "--noise", "0.1", "--seed", "3"]
    run = tmp_path / "run"
    _ok(["sample", "--depth", "2", "--widths", "32", "--samples", "2", "--steps", "2", *opts, "--sampler", "dense",
         "--quiet", "--out", run], capsys)
    _ok(["data", *opts, "--out", tmp_path / "d.npz"], capsys)
    _ok(["data", *opts, "--out", tmp_path / "d.csv"], capsys)
    _ok(["data", "--from-run", run, "--out", tmp_path / "r.npz"], capsys)
    # the documented convention, drawn by hand
    ref = synthetic("nonlinear", 6, 20, 0.1, np.random.SeedSequence(3, spawn_key=(0,)))
    for name in ("d.npz", "d.csv", "r.npz"):
        got = load_data(tmp_path / name)
        assert np.array_equal(got.X, ref.X) and np.array_equal(got.y, ref.y), name
    # and it is not the teacher of the bare seed (the spawn key matters)
    assert not np.array_equal(synthetic("nonlinear", 6, 20, 0.1, 3).X, ref.X)


def test_network_reproduces_a_dense_sample_record(tmp_path, capsys):
    run = tmp_path / "run"
    _ok(["sample", "--depth", "2", "--widths", "24,40", "--samples", "2", "--steps", "2", "--d", "5", "--m", "15",
         "--seed", "7", "--sampler", "dense", "--quiet", "--out", run], capsys)
    with open(run / "records.jsonl") as fh:
        recs = [json.loads(line) for line in fh]
    rec = next(r for r in recs if r["width"] == 40 and r["sample"] == 1)
    _ok(["data", "--synthetic", "linear", "--d", "5", "--m", "15", "--seed", "7", "--out", tmp_path / "data.npz"], capsys)
    _ok(["data", "--network", "--depth", "2", "--width", "40", "--d", "5", "--param", "mup", "--seed", "7",
         "--sample", "1", "--out", tmp_path / "net.npz"], capsys)
    _ok(["data", "--network", "--from-run", run, "--width", "40", "--sample", "1", "--out", tmp_path / "net2.npz"], capsys)
    w, w2 = load_weights(tmp_path / "net.npz", input_dim=5), load_weights(tmp_path / "net2.npz", input_dim=5)
    # by hand: SeedSequence(seed, spawn_key=(n, k)), order W0, W1, W2, V; muP readout variance 1/n^2
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(7, spawn_key=(40, 1))))
    W0 = rng.standard_normal((40, 5)) / np.sqrt(5)
    W1, W2 = rng.standard_normal((40, 40)) / np.sqrt(40), rng.standard_normal((40, 40)) / np.sqrt(40)
    V = rng.standard_normal(40) / 40.0
    for got in (w, w2):
        np.testing.assert_allclose(got.W0, W0, rtol=1e-15, atol=0)
        np.testing.assert_allclose(got.hidden[0], W1, rtol=1e-15, atol=0)
        np.testing.assert_allclose(got.hidden[1], W2, rtol=1e-15, atol=0)
        np.testing.assert_allclose(got.V, V, rtol=1e-15, atol=0)
    out = _ok(["poly", "--data", tmp_path / "data.npz", "--weights", tmp_path / "net.npz", "--steps", "2", "--json"], capsys)
    doc = json.loads(out)
    assert doc["eta_opt"] == pytest.approx(rec["eta_opt"], rel=1e-12, abs=0)
    np.testing.assert_allclose(doc["loss_coefficients"][:4], rec["loss_coefficients"][:4], rtol=1e-12, atol=0)


def test_sp_network_has_the_sp_readout(tmp_path, capsys):
    _ok(["data", "--network", "--depth", "1", "--width", "400", "--d", "3", "--param", "sp", "--out", tmp_path / "n.npz"],
        capsys)
    V = load_weights(tmp_path / "n.npz").V
    assert 0.8 < V.var() * 400 < 1.2  # N(0, 1/n), not muP's 1/n^2


def test_force_overwrites_and_without_it_the_file_is_kept(tmp_path, capsys):
    out = tmp_path / "d.npz"
    _ok(["data", "--synthetic", "linear", "--d", "2", "--m", "3", "--seed", "1", "--out", out], capsys)
    before = out.read_bytes()
    rc, _, err = _run(["data", "--synthetic", "linear", "--d", "2", "--m", "3", "--seed", "2", "--out", out], capsys)
    assert rc == 2 and "--force" in err and out.read_bytes() == before
    _ok(["data", "--synthetic", "linear", "--d", "2", "--m", "3", "--seed", "2", "--out", out, "--force"], capsys)
    assert out.read_bytes() != before
    assert [p.name for p in tmp_path.iterdir()] == ["d.npz"]  # no temporary file left behind


@pytest.mark.parametrize("argv, needle", [
    (["--synthetic", "linear", "--out", "missing/d.npz"], "does not exist"),
    (["--synthetic", "linear", "--out", "d.txt"], "ending in .npz or .csv"),
    (["--synthetic", "linear", "--out", ""], "`out`=''"),
    (["--synthetic", "linear", "--out", "."], "not a directory"),
    (["--out", "d.npz"], "give a source"),
    (["--synthetic", "linear", "--from-run", "r", "--out", "d.npz"], "not both"),
    (["--synthetic", "linear", "--depth", "2", "--out", "d.npz"], "`--depth`"),
    (["--synthetic", "linear", "--d", "0", "--out", "d.npz"], "`d`='0'"),
    (["--synthetic", "cubic", "--out", "d.npz"], "cubic"),
    (["--synthetic", "linear", "--noise", "-1", "--out", "d.npz"], "`noise`='-1'"),
    (["--from-run", "no-such-run", "--out", "d.npz"], "no-such-run"),
    (["--from-run", "run", "--seed", "4", "--out", "d.npz"], "`--seed`"),
    (["--network", "--depth", "2", "--out", "n.npz"], "--width"),
    (["--network", "--width", "8", "--out", "n.npz"], "--depth"),
    (["--network", "--depth", "2", "--width", "8", "--out", "n.csv"], "ending in .npz"),
    (["--network", "--depth", "2", "--width", "8", "--m", "5", "--out", "n.npz"], "`--m`"),
    (["--network", "--depth", "2", "--width", "8", "--param", "xp", "--out", "n.npz"], "xp"),
    (["--network", "--depth", "3", "--width", "100000000", "--out", "n.npz"], "GiB"),
    (["--network", "--from-run", "run", "--width", "4096", "--out", "n.npz"], "lazily"),
    (["--network", "--from-run", "run", "--width", "8", "--depth", "2", "--out", "n.npz"], "`--depth`"),
])
def test_bad_input_is_one_line_exit_2(tmp_path, capsys, monkeypatch, argv, needle):
    monkeypatch.chdir(tmp_path)
    if "run" in argv:
        _ok(["sample", "--depth", "1", "--widths", "8", "--samples", "1", "--steps", "1", "--d", "3", "--m", "4",
             "--quiet", "--out", "run"], capsys)
    rc, out, err = _run(["data", *argv], capsys)
    assert rc == 2
    assert err.count("\n") == 1 and needle in err, err
    assert not os.path.exists("d.npz") and not os.path.exists("n.npz")
