"""Alignment diagnostics of `sweep` (issue 14, part 3; Kosson et al.'s α_W and α_ΔW): hand-built matrices
with known values, a hand-written training loop's weight history, μP's predicted width scaling, and the
records of a run."""

from __future__ import annotations

import numpy as np
import pytest

from polyloss import api
from polyloss.data import linear_teacher
from polyloss.errors import SpecError
from polyloss.recipe import Recipe
from polyloss.spec import NetworkSpec, Parametrization
from polyloss.train import ALIGNMENT_METRICS, _alignment, alignment_layers, alignment_steps, sweep_network
from polyloss.weights import child_seed, sample_weights

DATA = linear_teacher(d=5, m=16, noise=0.1, seed=4)
MUP = Parametrization.parse("mup")


def test_hand_built_values():
    W = np.array([[[3.0, 0.0], [0.0, 4.0]]])  # |W| = 5
    X = np.array([[1.0, 0.0]])  # one input along e_1: W X = (3, 0)
    dW = np.array([[[0.0, 0.0], [0.0, 1.0]]])  # moves only what X does not see
    got = dict(zip(ALIGNMENT_METRICS, _alignment(np, X, W, dW, 1)[0]))
    assert got == {"rel_update": 0.2, "rel_repr": 0.0, "align_w": 0.6, "align_dw": 0.0}
    b, u = np.array([1.0, 2.0]), np.array([2.0, 0.0])  # a rank-one update whose row space is X's
    got = dict(zip(ALIGNMENT_METRICS, _alignment(np, X, W, np.outer(b, u)[None], 1)[0]))
    assert got["align_dw"] == pytest.approx(1.0) and got["rel_update"] == pytest.approx(np.sqrt(20) / 5)
    assert got["rel_repr"] == pytest.approx(np.sqrt(20) / 3)  # |dW x| = |b| |u.x| = 2 sqrt 5, |W x| = 3


def test_alignment_steps():
    assert alignment_steps(1) == [0]
    assert alignment_steps(10) == [0, 1, 3, 7, 9]
    assert alignment_steps(16) == [0, 1, 3, 7, 15]
    assert alignment_layers(3) == ["W1", "W2", "W3"]
    assert alignment_layers(2, Recipe(trained="input,hidden,readout")) == ["W0", "W1", "W2", "V"]


def _history(w, eta, steps):
    """GD on the hidden layers of a linear net, written out; the weights and layer inputs of every step."""
    Ws, out = [M.copy() for M in w.hidden], []
    for _ in range(steps):
        acts = [DATA.X @ w.W0.T]
        for M in Ws:
            acts.append(acts[-1] @ M.T)
        r = (acts[-1] @ w.V - DATA.y) / DATA.m
        delta, new = r[:, None] * w.V[None, :], []
        for l in range(len(Ws) - 1, -1, -1):
            new.append(Ws[l] - eta * delta.T @ acts[l])
            delta = delta @ Ws[l]
        new = new[::-1]
        out.append([(acts[l], Ws[l], new[l] - Ws[l]) for l in range(len(Ws))])
        Ws = new
    return out


def _metrics(X, W, dW):
    f = np.linalg.norm
    return [f(dW) / f(W), f(X @ dW.T) / f(X @ W.T), f(X @ W.T) / (f(W) * f(X)), f(X @ dW.T) / (f(dW) * f(X))]


@pytest.mark.parametrize("recipe", [None, Recipe(trained="hidden", schedule="warmup:2")])
def test_against_a_hand_written_loop(recipe):
    n, steps, etas = 24, 5, np.array([0.1, 0.7])
    w = sample_weights(NetworkSpec(2, n, DATA.d), MUP, child_seed(3, n, 0))
    losses, diag = sweep_network(w, DATA, MUP, etas, steps, recipe=recipe, alignment=True)
    assert diag.shape == (2, 2, len(alignment_steps(steps)), 4)
    for i, eta in enumerate(etas):
        if recipe is None:
            hist = _history(w, eta, steps)
        else:  # warmup:2 -> rates eta/2, eta, eta, ...: step k of the loop at its own rate
            hist = []
            rates = [eta * min(1.0, (k + 1) / 2) for k in range(steps)]
            Ws = [M.copy() for M in w.hidden]
            for k in range(steps):
                one = _history(type(w)(w.W0, tuple(Ws), w.V), rates[k], 1)[0]
                hist.append(one)
                Ws = [W + dW for _, W, dW in one]
        for j, k in enumerate(alignment_steps(steps)):
            for l in range(2):
                np.testing.assert_allclose(diag[i, l, j], _metrics(*hist[k][l]), rtol=1e-10)


def test_mup_alignment_scaling():
    """μP's assumption at the first step: α_ΔW = Θ(1), α_W = Θ(n^-1/2) (Kosson et al.; Yang & Hu)."""
    aw, adw = [], []
    widths = (64, 256, 1024)
    for n in widths:
        w = sample_weights(NetworkSpec(2, n, DATA.d), MUP, child_seed(0, n, 0))
        _, diag = sweep_network(w, DATA, MUP, [0.5], 1, alignment=True)
        aw.append(diag[0, 1, 0, 2])
        adw.append(diag[0, 1, 0, 3])
    slope_w = np.polyfit(np.log(widths), np.log(aw), 1)[0]
    slope_dw = np.polyfit(np.log(widths), np.log(adw), 1)[0]
    assert -0.6 < slope_w < -0.4 and abs(slope_dw) < 0.1


def test_run_records_and_options(tmp_path):
    run_ = api.sweep(tmp_path / "r", depth=2, widths=[16, 32], etas="lin:0.1:1:4", seeds=2, steps=4, data=DATA,
                     alignment=True, progress=False, activation="relu")
    cfg = run_.config
    assert cfg["alignment"] and cfg["alignment_steps"] == [0, 1, 3] and cfg["alignment_layers"] == ["W1", "W2"]
    rec = run_.records[0]
    assert set(rec["alignment"]) == set(ALIGNMENT_METRICS) and rec["method"] == "dense"
    w = sample_weights(NetworkSpec(2, 16, DATA.d), MUP, child_seed(0, 16, 0))
    _, diag = sweep_network(w, DATA, MUP, run_.etas, 4, activation="relu", alignment=True)
    assert np.array_equal(np.array(rec["alignment"]["align_dw"], dtype=float), diag[..., 3])
    with pytest.raises(SpecError, match="`method`='lowrank'"):
        api.sweep(tmp_path / "x", depth=1, widths=[8], etas="lin:0.1:1:4", seeds=1, steps=2, data=DATA,
                  alignment=True, method="lowrank", progress=False)


def test_report_figures_and_predictions(tmp_path):
    """A minibatch run gets no polynomial prediction; a gain-√2 linear GD run gets the polynomial of its own
    (scaled) networks, which matches training; an alignment run gets its figure, axes described."""
    import json

    from polyloss.cli import main

    common = ["sweep", "--depth", "2", "--widths", "16,32", "--etas", "lin:0.1:1.5:6", "--seeds", "2", "--steps", "3",
              "--d", "5", "--m", "16", "--quiet"]
    assert main(common + ["--batch", "4", "--alignment", "--out", str(tmp_path / "mb")]) == 0
    assert main(common + ["--init-gain", "he", "--out", str(tmp_path / "he")]) == 0
    assert main(["report", str(tmp_path / "mb"), str(tmp_path / "he"), "--out", str(tmp_path / "rep")]) == 0
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "minibatch SGD, B = 4: no polynomial prediction" in md
    doc = json.loads((tmp_path / "rep" / "report.json").read_text())
    sweeps = doc["numbers"]["sweeps"] if "numbers" in doc else doc["sweeps"]
    he = next(v for k, v in sweeps.items() if "[he]" in k)
    assert all(r["max_rel_diff_trained_vs_polynomial"] < 1e-9 for r in he["per_width"])
    figs = doc.get("figures") or doc.get("figdata") or {}
    name = next(k for k in figs if k.startswith("fig_e_alignment"))
    axes = figs[name]["axes"]
    assert [a["xlabel"] for a in axes] == ["step s + 1 (log scale)"] * 4
    assert all(a["legend"] == ["n = 16", "n = 32"] for a in axes)
    opt = [k for k in figs if k.startswith("fig_e_optimum")]
    assert len(opt) == 2  # one per sweep: eta* vs width
    he_fig = next(figs[k] for k in opt if "init gain he" in figs[k]["axes"]["title"])
    assert he_fig["axes"]["legend"] == ["per-seed grid argmin", "polynomial (same networks, same grid)"]
