"""Training recipes through every entry point (issue 11, part 3): CLI flags, API, records, sweep."""

import argparse
import json

import numpy as np
import pytest

from polyloss import api
from polyloss.cli import build_parser, main
from polyloss.commands._common import recipe_from_args
from polyloss.data import linear_teacher
from polyloss.engine import LossEngine
from polyloss.errors import PolylossError, SpecError
from polyloss.gd_recipe import recipe_train
from polyloss.recipe import PLAIN, Recipe
from polyloss.spec import NetworkSpec, Parametrization
from polyloss.sweep import load_sweep, sweep_network
from polyloss.weights import child_seed, sample_weights

MUP = Parametrization.preset("mup")
FLAGS = ["--train", "input,hidden,readout", "--lr-exponents", "-1,0,1", "--weight-decay", "0.1",
         "--wd-mode", "independent", "--schedule", "warmup:2", "--momentum", "0.9", "--nesterov"]
HIDDEN_FLAGS = ["--schedule", "warmup:2", "--weight-decay", "0.1", "--wd-mode", "decoupled", "--momentum", "0.5"]
HIDDEN = Recipe(schedule="warmup:2", weight_decay="0.1", wd_mode="decoupled", momentum="0.5")

# several recipes: hidden-only and all-layer ones
RECIPES = [
    HIDDEN,
    Recipe(schedule="cosine", weight_decay="0.05", wd_mode="l2", momentum="0.9", nesterov=True),
    Recipe(weight_decay="0.2", wd_mode="independent", schedule="0.5,1,0.75"),
    Recipe(trained="input,hidden,readout", schedule="warmup:2", weight_decay="0.1", wd_mode="l2", momentum="0.5"),
    Recipe(trained="input,readout", lr_exponents="mup", weight_decay="0.1", wd_mode="independent"),
    Recipe(trained="input,hidden,readout", lr_exponents="0,0,1", schedule="exp-warmup:0.5", weight_decay="0.1",
           wd_mode="decoupled", momentum="0.9", nesterov=True),
]


def _net(depth, width, data, param=MUP, seed=0, sample=0):
    return sample_weights(NetworkSpec(depth, width, data.d), param, child_seed(seed, width, sample))


def _parse(cmd, extra):
    return build_parser().parse_args(cmd + extra)


POLY = ["poly", "--data", "d.npz", "--weights", "w.npz", "--steps", "2"]
SAMPLE = ["sample", "--depth", "1", "--widths", "8", "--samples", "1", "--steps", "2", "--out", "x"]
SWEEP = ["sweep", "--depth", "1", "--widths", "8", "--etas", "0.1,0.2", "--steps", "2", "--out", "x"]
DERIVE = ["derive", "--depth", "1", "--steps", "2"]


# ------------------------------------------------------------------------------------ flags
@pytest.mark.parametrize("cmd", [POLY, SAMPLE, SWEEP, DERIVE], ids=["poly", "sample", "sweep", "derive"])
def test_flags_parse_into_the_recipe(cmd):
    r = recipe_from_args(_parse(cmd, FLAGS), 2)
    assert r == Recipe(trained="input,hidden,readout", lr_exponents="-1,0,1", weight_decay="0.1", wd_mode="independent",
                       schedule="warmup:2", momentum="0.9", nesterov=True)
    assert recipe_from_args(_parse(cmd, []), 2) == PLAIN
    assert recipe_from_args(_parse(cmd, ["--lr-exponents", "mup", "--schedule", "1/2,1"]), 2) == Recipe(
        lr_exponents="mup", schedule="0.5,1")


@pytest.mark.parametrize("flags, flag", [
    (["--train", "input,bogus"], "--train"),
    (["--train", ""], "--train"),
    (["--lr-exponents", "1,2"], "--lr-exponents"),
    (["--lr-exponents", "nan,0,0"], "--lr-exponents"),
    (["--weight-decay", "-1"], "--weight-decay"),
    (["--weight-decay", "inf"], "--weight-decay"),
    (["--wd-mode", "adamw"], "--wd-mode"),
    (["--weight-decay", "1", "--wd-mode", "independent"], "--weight-decay"),
    (["--schedule", "warmup:0"], "--schedule"),
    (["--schedule", "exp-warmup:2"], "--schedule"),
    (["--schedule", "1,0"], "--schedule"),
    (["--schedule", "1"], "--schedule"),  # one value for two steps
    (["--momentum", "1"], "--momentum"),
    (["--momentum", "x"], "--momentum"),
    (["--nesterov"], "--nesterov"),
])
@pytest.mark.parametrize("cmd", ["poly", "sample", "sweep", "derive"])
def test_bad_recipe_flags_exit_2_with_one_line_naming_the_flag(tmp_path, capsys, monkeypatch, cmd, flags, flag):
    monkeypatch.chdir(tmp_path)
    base = {"poly": POLY, "sample": SAMPLE, "sweep": SWEEP, "derive": DERIVE}[cmd]
    assert main(base + flags) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert f"`{flag}" in err, err
    assert not (tmp_path / "x").exists()  # refused before any work


def test_derive_passes_the_recipe_and_refuses_what_it_cannot_derive(capsys):
    # hidden-only recipes under muP are derived (polyloss.derive.check_recipe); the limit differs from plain GD
    assert main(DERIVE + ["--format", "json"]) == 0
    plain = json.loads(capsys.readouterr().out)
    assert main(DERIVE + ["--momentum", "0.5", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["loss_coefficients"] != plain["loss_coefficients"]
    # a plain recipe spelled out explicitly is the plain limit
    assert main(DERIVE + ["--schedule", "1,1", "--lr-exponents", "mup", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["loss_coefficients"] == plain["loss_coefficients"]
    # a trained input layer: the closed form needs d, refused in one line without it
    assert main(DERIVE + ["--train", "input,hidden"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "`input_dim`" in err, err
    assert main(DERIVE + ["--train", "input,hidden", "--input-dim", "3", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["input_dim"] == 3 and doc["recipe"]["trained"] == ["input", "hidden"]
    assert doc["loss_coefficients"] != plain["loss_coefficients"]
    # no limit in eta (l2 decay times the input rate n): the power counting, exit 0
    assert main(DERIVE + ["--train", "input,hidden", "--weight-decay", "0.1", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["route"] == "power-counting" and doc["recipe_power_counting"]["eta_exponent"] == "-1"


# ------------------------------------------------------------------------------------ poly
@pytest.fixture
def files(tmp_path):
    data = linear_teacher(d=4, m=6, seed=3)
    w = _net(2, 12, data)
    np.savez(tmp_path / "d.npz", X=data.X, y=data.y)
    np.savez(tmp_path / "w.npz", W0=w.W0, W1=w.hidden[0], W2=w.hidden[1], V=w.V)
    return tmp_path, data, w


def test_poly_json_holds_the_recipe_and_equals_engine_and_gd_recipe(files, capsys):
    tmp, data, w = files
    argv = ["poly", "--data", str(tmp / "d.npz"), "--weights", str(tmp / "w.npz"), "--steps", "2", "--json"]
    assert main(argv + HIDDEN_FLAGS) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema"] == "polyloss.poly/3"
    assert doc["recipe"] == HIDDEN.to_dict() and Recipe.from_dict(doc["recipe"]) == HIDDEN
    eng = LossEngine(w, data, MUP, recipe=HIDDEN)
    p = eng.polynomial(2)
    assert doc["full_degree"] == p.full_degree
    np.testing.assert_allclose(doc["loss_coefficients"], p.loss, rtol=1e-12, atol=0)
    eta = doc["eta_opt"]
    ref = recipe_train(w, data, MUP, HIDDEN, eta, 2)[-1]
    assert doc["loss_at_eta_opt"] == pytest.approx(ref, rel=1e-11)
    assert float(eng.loss_at([eta], 2)[0]) == pytest.approx(ref, rel=1e-11)
    # the plain CLI records the plain recipe
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["recipe"] == PLAIN.to_dict()


def test_api_poly_takes_recipe_in_every_form(files):
    tmp, data, w = files
    a = api.poly(w, data, "mup", 2, recipe=HIDDEN, certify="bound")
    b = api.poly(w, data, "mup", 2, recipe=HIDDEN.to_dict(), certify="bound")
    assert a.recipe == b.recipe == HIDDEN
    np.testing.assert_array_equal(a.polynomial.loss, b.polynomial.loss)
    assert api.poly(w, data, "mup", 1, recipe=None).recipe == PLAIN
    for bad in ("warmup:2", 3, {"schedule": "warmup:0"}, {"colour": "red"}):
        with pytest.raises(SpecError) as exc:
            api.poly(w, data, "mup", 2, recipe=bad)
        msg = str(exc.value)
        assert "\n" not in msg and ("`recipe`" in msg or "`schedule`" in msg), msg
    with pytest.raises(SpecError, match="schedule"):
        api.poly(w, data, "mup", 3, recipe=Recipe(schedule="1,1"))


# ------------------------------------------------------------------------------------ sample
SAMPLE_ARGS = ["sample", "--depth", "2", "--widths", "8,16", "--samples", "2", "--steps", "2", "--d", "4", "--m", "6",
               "--seed", "5", "--quiet", "--sampler", "dense"]


def _records(path):
    return [json.loads(line) for line in (path / "records.jsonl").read_text().splitlines()]


def _strip(rec):
    return {k: v for k, v in rec.items() if k != "seconds"}


def test_sample_records_the_recipe_and_refuses_a_changed_one_on_resume(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(SAMPLE_ARGS + HIDDEN_FLAGS + ["--out", str(out)]) == 0
    cfg = json.loads((out / "run.json").read_text())
    assert cfg["recipe"] == HIDDEN.to_dict()
    assert "recipe: train hidden · schedule warmup:2" in capsys.readouterr().out
    assert main(SAMPLE_ARGS + HIDDEN_FLAGS + ["--out", str(out), "--resume", "--samples", "3"]) == 0
    capsys.readouterr()
    for changed in (["--momentum", "0.6"], ["--wd-mode", "l2"], []):
        flags = HIDDEN_FLAGS[:-2] + changed if changed != [] else []
        assert main(SAMPLE_ARGS + flags + ["--out", str(out), "--resume"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "cannot resume" in err and "`recipe`" in err, err


def test_sample_degree_is_the_recipe_degree(tmp_path):
    from polyloss.recipe import recipe_loss_degree
    from polyloss.sampling import run_sample
    from polyloss.spec import SamplingSpec, TrainingSpec

    data = linear_teacher(d=4, m=6, seed=0)
    r = Recipe(trained="input,hidden,readout")
    # the full degree that caps `degree` is the recipe's (input/readout training raises it)
    assert recipe_loss_degree(1, 2, r) > recipe_loss_degree(1, 2, PLAIN)
    run = run_sample(tmp_path / "a", depth=1, sampling=SamplingSpec([8], 1, 0), training=TrainingSpec(2, 100),
                     param=MUP, data=data, data_description={"kind": "test"}, progress=False, recipe=HIDDEN,
                     sampler="dense")
    assert run.config["degree"] == recipe_loss_degree(1, 2, HIDDEN)
    assert run.config["recipe"] == HIDDEN.to_dict()


def test_plain_sample_run_keeps_its_bits(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(SAMPLE_ARGS + ["--out", str(a)]) == 0
    assert main(SAMPLE_ARGS + ["--out", str(b), "--train", "hidden", "--schedule", "1,1", "--weight-decay", "0",
                               "--momentum", "0", "--wd-mode", "decoupled", "--lr-exponents", "mup"]) == 0
    ca, cb = (json.loads((p / "run.json").read_text()) for p in (a, b))
    assert {k: v for k, v in ca.items() if k != "recipe"} == {k: v for k, v in cb.items() if k != "recipe"}
    assert [_strip(r) for r in _records(a)] == [_strip(r) for r in _records(b)]


def test_old_sample_run_without_recipe_loads_and_resumes(tmp_path):
    from polyloss.sampling import load_run

    out = tmp_path / "old"
    assert main(SAMPLE_ARGS + ["--out", str(out)]) == 0
    cfg = json.loads((out / "run.json").read_text())
    del cfg["recipe"]
    (out / "run.json").write_text(json.dumps(cfg))
    assert load_run(out).config["recipe"] == PLAIN.to_dict()
    assert main(SAMPLE_ARGS + ["--out", str(out), "--resume", "--samples", "3"]) == 0
    assert main(SAMPLE_ARGS + ["--out", str(out), "--resume", "--momentum", "0.5"]) == 2


def test_compare_uses_the_recipe_limit_and_refuses_what_has_none(tmp_path, capsys):
    """A hidden-only muP recipe run is compared with the exact limit of *that* recipe; a derivation
    file for another recipe is refused; a recipe without an exact limit (trained readout) is refused."""
    from fractions import Fraction

    from polyloss.compare import limit_for_run, run_dataset
    from polyloss.derive import derive
    from polyloss.sampling import load_run

    out = tmp_path / "run"
    assert main(SAMPLE_ARGS + HIDDEN_FLAGS + ["--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["compare", str(out)]) == 0
    assert f"recipe: {HIDDEN.describe()}" in capsys.readouterr().out
    run = load_run(out)
    lim = limit_for_run(run)
    ref = derive(2, 2, data=run_dataset(run), recipe=HIDDEN)
    plain = derive(2, 2, data=run_dataset(run))
    assert lim.loss_coefficients == tuple(Fraction(c) for c in ref.loss_coefficients)
    assert lim.loss_coefficients != tuple(Fraction(c) for c in plain.loss_coefficients)  # the recipe matters
    (tmp_path / "plain.json").write_text(plain.to_json_str())
    assert main(["compare", str(out), "--derivation", str(tmp_path / "plain.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "plain GD" in err and "warmup:2" in err
    (tmp_path / "ref.json").write_text(ref.to_json_str())
    assert main(["compare", str(out), "--derivation", str(tmp_path / "ref.json")]) == 0
    capsys.readouterr()
    readout = tmp_path / "readout"  # trained readout: its limit exists and compare uses it
    assert main(SAMPLE_ARGS + ["--train", "hidden,readout", "--out", str(readout)]) == 0
    capsys.readouterr()
    assert main(["compare", str(readout)]) == 0
    assert "recipe: train hidden+readout" in capsys.readouterr().out
    nolim = tmp_path / "nolimit"  # l2 decay times the input rate n: no limit in eta
    assert main(SAMPLE_ARGS + ["--train", "input,hidden", "--weight-decay", "0.1", "--out", str(nolim)]) == 0
    capsys.readouterr()
    assert main(["compare", str(nolim)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot derive" in err and "n^(-1)" in err, err
    with pytest.raises(PolylossError, match="cannot derive"):
        api.compare(nolim)
    plain_run = tmp_path / "plain"
    assert main(SAMPLE_ARGS + ["--out", str(plain_run)]) == 0
    capsys.readouterr()
    assert main(["compare", str(plain_run)]) == 0
    assert "recipe: plain GD (hidden layers, constant rate)" in capsys.readouterr().out
    assert main(["compare", str(plain_run), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["recipe"] == "plain GD (hidden layers, constant rate)"


def test_report_shows_the_recipe(tmp_path):
    out = tmp_path / "run"
    assert main(SAMPLE_ARGS + HIDDEN_FLAGS + ["--out", str(out)]) == 0
    api.report([out], tmp_path / "rep")
    html = (tmp_path / "rep" / "report.html").read_text()
    assert HIDDEN.describe() in html
    numbers = json.loads((tmp_path / "rep" / "report.json").read_text())
    (entry,) = numbers["runs"].values()
    assert entry["recipe"] == HIDDEN.describe() and entry["config"]["recipe"] == HIDDEN.to_dict()
    assert "compare" in entry and "compare_error" not in entry  # compared with the recipe's own limit


# ------------------------------------------------------------------------------------ sweep
@pytest.mark.parametrize("recipe", RECIPES, ids=lambda r: r.describe())
@pytest.mark.parametrize("depth, steps, param", [(1, 2, "mup"), (2, 3, "mup"), (3, 2, "ntp")])
def test_linear_gd_sweep_is_the_recipe(recipe, depth, steps, param):
    """sweep ≡ gd_recipe (the independent reference trainer) at every η of the grid, and ≡ the
    engine's stable evaluator where the engine supports the recipe."""
    data = linear_teacher(d=5, m=7, seed=depth)
    p = Parametrization.parse(param)
    w = _net(depth, 12, data, p)
    etas = np.linspace(0.05, 1.2, 9) if param == "mup" else np.linspace(0.5, 12, 9)
    L = sweep_network(w, data, p, etas, steps, recipe=recipe, memory_mb=0.05)  # several chunks
    ref = np.array([recipe_train(w, data, p, recipe, e, steps) for e in etas])
    assert np.all(np.isfinite(ref))
    np.testing.assert_allclose(L, ref, rtol=1e-11, atol=0)
    try:
        eng = LossEngine(w, data, p, recipe=recipe)
    except SpecError as exc:
        assert "not supported by the engine yet" in str(exc)
        pytest.skip(f"the engine does not support this recipe yet ({recipe.describe()}): checked against gd_recipe only")
    np.testing.assert_allclose(L[:, -1], eng.loss_at(etas, steps), rtol=1e-11, atol=0)


def test_relu_sweep_applies_the_recipe():
    """ReLU: the recipe's update rules (one step by hand-derived gradients) and the plain identity."""
    data = linear_teacher(d=4, m=5, seed=1)
    w = _net(2, 10, data)
    etas = np.array([0.1, 0.4])
    plain = sweep_network(w, data, MUP, etas, 2, activation="relu", method="dense")
    same = sweep_network(w, data, MUP, etas, 2, activation="relu", recipe=Recipe(schedule="1,1"), method="dense")
    np.testing.assert_array_equal(plain, same)  # a plain recipe is today's trainer, bit for bit
    # a non-plain recipe whose only change is a constant factor on the schedule equals plain GD at ρη
    half = sweep_network(w, data, MUP, etas, 2, activation="relu", recipe=Recipe(schedule="0.5,0.5"))
    np.testing.assert_allclose(half, sweep_network(w, data, MUP, etas / 2, 2, activation="relu", method="dense"),
                               rtol=1e-13)
    # independent decay with frozen hidden layers but trained readout: f is linear in V
    r = Recipe(trained="readout", weight_decay="0.1", wd_mode="independent")
    got = sweep_network(w, data, MUP, etas, 1, activation="relu", recipe=r)
    A = np.maximum(np.maximum(data.X @ w.W0.T, 0) @ w.hidden[0].T, 0) @ w.hidden[1].T
    A = np.maximum(A, 0)
    for i, eta in enumerate(etas):
        res = A @ w.V - data.y
        V1 = 0.9 * w.V - eta * (1 / 10) * (A.T @ res) / data.m  # muP readout rate n^-1, decay (1 - 0.1)
        r1 = A @ V1 - data.y
        assert got[i, 1] == pytest.approx(r1 @ r1 / (2 * data.m), rel=1e-12)


def test_sweep_records_the_recipe_and_refuses_what_it_cannot_do(tmp_path, capsys):
    base = ["sweep", "--depth", "2", "--widths", "8", "--etas", "lin:0.1:1:4", "--steps", "2", "--d", "4", "--m", "6",
            "--quiet"]
    out = tmp_path / "sw"
    assert main(base + FLAGS + ["--out", str(out)]) == 0
    run = load_sweep(out)
    r = Recipe.from_dict(run.config["recipe"])
    assert r.trained == frozenset({"input", "hidden", "readout"}) and r.nesterov
    assert run.records[0]["method"] == "dense"
    assert main(base + FLAGS[:-1] + ["--out", str(out), "--resume"]) == 2  # without --nesterov
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "`recipe`" in err
    for extra in (["--optimizer", "adam"], ["--method", "lowrank"]):
        assert main(base + ["--momentum", "0.5", "--out", str(tmp_path / "x")] + extra) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and ("recipe" in err), err
    with pytest.raises(SpecError, match="`recipe`"):
        api.sweep(tmp_path / "y", data=linear_teacher(d=4, m=6, seed=0), depth=1, widths=[8], etas="0.1,0.2",
                  seeds=1, steps=1, recipe="momentum")


def test_plain_sweep_keeps_its_bits_and_old_runs_load(tmp_path):
    base = ["sweep", "--depth", "2", "--widths", "8,32", "--etas", "lin:0.1:1:4", "--steps", "2", "--d", "4", "--m", "6",
            "--quiet"]
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(base + ["--out", str(a)]) == 0
    assert main(base + ["--out", str(b), "--lr-exponents", "mup", "--schedule", "constant"]) == 0
    ra, rb = load_sweep(a), load_sweep(b)
    assert [_strip(x) for x in ra.records] == [_strip(x) for x in rb.records]
    cfg = json.loads((a / "run.json").read_text())
    assert cfg["recipe"] == PLAIN.to_dict()
    del cfg["recipe"]
    (a / "run.json").write_text(json.dumps(cfg))
    assert load_sweep(a).config["recipe"] == PLAIN.to_dict()
    assert main(base + ["--out", str(a), "--resume", "--seeds", "2"]) == 0


def test_api_sample_and_sweep_validate_recipe(tmp_path):
    data = linear_teacher(d=4, m=6, seed=0)
    with pytest.raises(SpecError) as exc:
        api.sample(tmp_path / "s", depth=1, sampling={"widths": [8], "samples": 1, "seed": 0}, training=2, data=data,
                   recipe=["hidden"])
    assert "`recipe`" in str(exc.value) and "\n" not in str(exc.value)
    with pytest.raises(SpecError, match="schedule"):
        api.sample(tmp_path / "s", depth=1, sampling={"widths": [8], "samples": 1, "seed": 0}, training=3, data=data,
                   recipe={"schedule": "1,1"})
    with pytest.raises(SpecError, match="lr_exponents"):
        api.sample(tmp_path / "s", depth=1, sampling={"widths": [8], "samples": 1, "seed": 0}, training=2, data=data,
                   param="3,1", recipe={"trained": ["input", "hidden"]})
    assert not (tmp_path / "s").exists()
    # a recipe that the engine cannot run (yet) is refused before the run directory exists
    try:
        LossEngine(_net(1, 4, data), data, MUP, recipe=Recipe(trained="input,hidden"))
    except SpecError:
        with pytest.raises(SpecError, match="not supported by the engine yet"):
            api.sample(tmp_path / "s", depth=1, sampling={"widths": [8], "samples": 1, "seed": 0}, training=2,
                       data=data, recipe={"trained": ["input", "hidden"]}, progress=False)
        assert not (tmp_path / "s").exists()
    run = api.sweep(tmp_path / "w", data=data, depth=1, widths=[8], etas="0.1,0.2", seeds=1, steps=2,
                    recipe=HIDDEN.to_dict(), progress=False)
    assert run.config["recipe"] == HIDDEN.to_dict()


def test_verify_names_the_recipe():
    from types import SimpleNamespace

    from polyloss.checks import verdict_recipe

    assert verdict_recipe(SimpleNamespace(numbers={})) == PLAIN.describe()
    assert verdict_recipe(SimpleNamespace(numbers={"recipe": HIDDEN.to_dict()})) == HIDDEN.describe()


def test_recipe_help_states_the_decay_modes(capsys):
    for cmd in ("poly", "sample", "sweep", "derive"):
        with pytest.raises(SystemExit):
            main([cmd, "--help"])
        out = capsys.readouterr().out
        for text in ("--train", "--lr-exponents", "--weight-decay", "--wd-mode", "--schedule", "--momentum", "--nesterov",
                     "W <- (1 - eta*rho_s*w)*W - eta*rho_s*lambda_l*G", "W <- (1 - w)*W - eta*rho_s*lambda_l*G",
                     "W <- W - eta*rho_s*lambda_l*(G + w*W)"):
            assert text in out, (cmd, text)


def test_argparse_namespace_defaults_are_plain():
    ns = argparse.Namespace(train="hidden", lr_exponents=None, schedule="constant", weight_decay="0", wd_mode="l2",
                            momentum="0", nesterov=False)
    assert recipe_from_args(ns) == PLAIN


def test_report_fits_the_power_counting_exponent_for_a_recipe_without_a_limit(tmp_path, capsys):
    """μP with the input layer trained and l2 decay: no limit in η (power counting: η_n ~ n^-1), so
    report fits the scaling of η_n against that prediction instead of comparing with a limit."""
    run = tmp_path / "run"
    args = ["sample", "--depth", "1", "--widths", "8,16,32", "--samples", "2", "--steps", "1", "--d", "4", "--m", "6",
            "--seed", "5", "--quiet", "--sampler", "dense", "--train", "input,hidden", "--weight-decay", "0.1"]
    assert main(args + ["--out", str(run)]) == 0
    assert main(["report", str(run), "--out", str(tmp_path / "rep")]) == 0
    capsys.readouterr()
    text = (tmp_path / "rep" / "report.md").read_text()
    assert "power counting predicts n^-1" in text and "No comparison with the exact limit" not in text


def test_lr_exponents_overriding_the_param_hidden_rate_is_said(capsys):
    assert main(["derive", "--depth", "1", "--steps", "1", "--param", "ntp", "--lr-exponents", "mup"]) == 0
    err = capsys.readouterr().err
    assert "overriding --param ntp" in err and len(err.strip().splitlines()) == 1
    assert main(["derive", "--depth", "1", "--steps", "1", "--lr-exponents", "mup"]) == 0  # same rate: no note
    assert "overriding" not in capsys.readouterr().err


def test_default_window_follows_the_recipe_first_order_weight():
    """4·η_∞^{(1)} of the recipe: the t = 1 limit of a recipe training input and readout at μP rates
    is ½(μ_0 − 2kμ_1η + k²μ_2η²) with k = L + 1 + d at L = 1 (tests/test_fock_trained_io.py), so its
    minimiser is μ_1/(kμ_2); sample, poly and derive use 4× that. Plain and hidden-only windows are
    unchanged, bit for bit."""
    from fractions import Fraction

    from polyloss.data import linear_teacher
    from polyloss.derive import derive
    from polyloss.poly import default_window

    ds = linear_teacher(d=4, m=6, seed=2)
    plain = 4.0 * ds.eta_inf_t1(2)
    assert default_window(ds, 2) == plain == default_window(ds, 2, Recipe(momentum="0.5", schedule="warmup:2"))
    rc = Recipe(trained="input,hidden,readout", lr_exponents="mup")
    lim = derive(1, 1, ds, recipe=rc)
    c = [Fraction(x) for x in lim.loss_coefficients]
    assert len(c) == 3 and float(lim.window) == pytest.approx(4 * float(-c[1] / (2 * c[2])), rel=1e-14)
    assert default_window(ds, 1, rc) == pytest.approx(float(lim.window), rel=1e-14)
    assert default_window(ds, 2, rc) == pytest.approx(plain * 2 / (2 + 1 + 4), rel=1e-14)
    # a readout at rate n^0 outruns the rest: only it is active, k = 1
    fast_readout = Recipe(trained="hidden,readout", lr_exponents="-1,0,0")
    assert default_window(ds, 2, fast_readout) == pytest.approx(plain * 2, rel=1e-14)
