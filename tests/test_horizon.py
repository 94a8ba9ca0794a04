"""Growing training horizons T = T(n) in ``sample`` (issue 12, part 2): the rule's grammar, records
of a rule run against separate fixed-T runs (bit-identical per width), resume, the CLI, and fixed
integer horizons that leave run.json and the records exactly as they were."""

import json

import numpy as np
import pytest

from polyloss._budget import check_sample
from polyloss.cli import main
from polyloss.data import linear_teacher
from polyloss.errors import RunError, SpecError
from polyloss.horizon import MAX_STEPS, StepsRule, degree_for, limits_by_steps, split_by_steps, steps_by_width
from polyloss.sampling import data_seed, load_run, run_sample
from polyloss.spec import Parametrization, SamplingSpec, TrainingSpec

D, M = 5, 16


def _run(path, widths, steps, samples=2, seed=3, resume=False, degree=None, depth=1, recipe=None):
    data = linear_teacher(D, M, seed=data_seed(seed))
    return run_sample(path, depth=depth, sampling=SamplingSpec(widths, samples, seed), training=TrainingSpec(steps, degree),
                      param=Parametrization.preset("mup"), data=data, data_description={"kind": "test"},
                      resume=resume, progress=False, n_grid=24, sampler="dense", recipe=recipe)


def _lines(path):
    return [json.loads(line) for line in (path / "records.jsonl").read_text().splitlines()]


def _strip(rec):
    return {k: v for k, v in rec.items() if k not in ("seconds", "steps")}


# --- the rule ------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, widths, expected", [
    ("3", [64, 4096], [3, 3]),
    ("1+1", [64], [2]),
    ("ceil(2*n**0.15)", [64, 128, 1024], [4, 5, 6]),
    ("ceil(log2(n)/4)", [64, 256, 1024], [2, 2, 3]),
    ("sqrt(n)/4", [64, 256], [2, 4]),          # exact: no float rounding needed
    ("n**(1/3)", [8, 27, 1000], [2, 3, 10]),   # exact rational roots
    ("min(3, floor(log(n, 2)) - 5)", [64, 128, 2**20], [1, 2, 3]),
    ("n // 64 + n % 2", [64, 128, 192], [1, 2, 3]),
    ("round(n/100)", [150, 250], [2, 2]),      # round half to even
    ("64:1, 128:2,256:2", [128, 64, 256], [2, 1, 2]),
])
def test_valid_rules(text, widths, expected):
    rule = StepsRule.parse(text)
    assert [rule.steps_for(n) for n in widths] == expected
    assert StepsRule.parse(rule.spec) == rule  # the canonical spec parses back to the same rule
    assert StepsRule.from_dict(rule.to_dict()) == rule


def test_canonical_forms():
    assert StepsRule.parse("ceil( 2*n**0.15 )").spec == StepsRule.parse("ceil(2 * n ** 0.15)").spec
    assert StepsRule.parse("128:2,64:1").spec == "64:1,128:2"
    assert StepsRule.parse(2).is_fixed and StepsRule.parse("2*1").spec == "2" and StepsRule.parse("2").fixed == 2
    from polyloss.derive import MAX_STEPS as DERIVE_MAX
    assert MAX_STEPS == DERIVE_MAX  # every T of a rule has a derivable limit
    assert not StepsRule.parse("64:2").is_fixed  # pairs are a rule even when they agree
    assert TrainingSpec("3").steps == 3 and type(TrainingSpec("3").steps) is int
    assert isinstance(TrainingSpec("ceil(n/64)").steps, StepsRule)


@pytest.mark.parametrize("text, fragment", [
    ("__import__('os')", "may be called"),
    ("__import__('os').system('true')", "may be called"),
    ("().__class__", "not allowed"),
    ("n.bit_length()", "may be called"),
    ("x + 1", "unknown name 'x'"),
    ("ceil", "must be called"),
    ("ceil(n, 2)", "ceil takes 1"),
    ("max(n, key=abs)", "without keywords"),
    ("n if n else 1", "not allowed"),
    ("n > 1", "not allowed"),
    ("'a' * n", "not allowed"),
    ("0", "must be >= 1"),
    ("-2", "constant expression"),
    ("1/2", "constant expression"),
    ("n ** n ** n", "too large"),
    ("(n ** 99) ** 99", "too large"),
    ("64:1,64:2", "listed twice"),
    ("64:0", "outside [1, 12]"),
    ("64:1;128:2", "pairs are WIDTH:T separated by commas"),
    ("ceil(n", "not a valid expression"),
    ("n" * 300, "at most 200"),
    ("", "at most 200"),
])
def test_invalid_rules_are_one_line_spec_errors(text, fragment):
    with pytest.raises(SpecError) as e:
        StepsRule.parse(text).by_width([64, 100])
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("`steps`=") and fragment in msg, msg


@pytest.mark.parametrize("text, widths, fragment", [
    ("64:1,128:2", [64, 256], "must cover every requested width (add 256:T)"),
    ("2*n**0.15", [64], "it gives 3.73213, must give an integer"),  # not an integer
    ("n/100", [150], "it gives 1.5"),
    ("n - 63", [64, 100], f"it gives 37, must give an integer in [1, {MAX_STEPS}]"),
    ("n - 64", [64], "it gives 0"),
    ("log(n - 64)", [64], "at width 64: the logarithm"),
    ("1 / (n - 64)", [64], "division by zero"),
    ("(-n) ** 0.5", [64], "negative number to a fractional power"),
])
def test_rules_invalid_at_a_width_name_it(text, widths, fragment):
    rule = StepsRule.parse(text)
    with pytest.raises(SpecError) as e:
        rule.by_width(widths)
    assert "\n" not in str(e.value) and fragment in str(e.value), str(e.value)


def test_budget_refuses_a_width_whose_horizon_is_too_expensive(monkeypatch):
    monkeypatch.setenv("POLYLOSS_MAX_HOURS", "0.01")
    check_sample(3, [64, 128], 2, 1, None, 50, 10)  # T = 1: cheap
    with pytest.raises(SpecError, match=r"t = 12 \(steps rule '64:1,1024:12'\)"):  # the T = 12 width alone is too much
        check_sample(3, [64, 1024], 200, StepsRule.parse("64:1,1024:12"), None, 500, 10, sampler="dense")
    check_sample(3, [64, 1024], 2, StepsRule.parse("64:1,1024:1"), None, 50, 10, sampler="dense")


# --- records: a rule run equals separate fixed-T runs, width by width --------------------------------

def test_growing_horizon_records_equal_fixed_runs(tmp_path):
    widths = (8, 16, 32)
    rule = "ceil(log2(n)) - 2"  # 8 -> 1, 16 -> 2, 32 -> 3
    grown = _run(tmp_path / "rule", widths, rule)
    assert grown.config["steps"] is None and grown.config["steps_rule"] == "ceil(log2(n)) - 2"
    assert steps_by_width(grown) == {8: 1, 16: 2, 32: 3}
    by_width = grown.by_width()
    for n, T in ((8, 1), (16, 2), (32, 3)):
        fixed = _run(tmp_path / f"fixed{T}", (n,), T)
        assert fixed.config["steps"] == T and "steps_rule" not in fixed.config
        assert [r["steps"] for r in by_width[n]] == [T, T]
        assert [_strip(r) for r in by_width[n]] == [_strip(r) for r in fixed.records]
        assert len(by_width[n][0]["loss_coefficients"]) == min(8, 2 * T) + 1 == degree_for(grown.config, T) + 1
        # the split run is the fixed run, config and records (apart from timing and the run's widths/version)
        sub = split_by_steps(grown)[T]
        assert [_strip(r) for r in sub.records] == [_strip(r) for r in fixed.records]
        keep = lambda c: {k: v for k, v in c.items() if k not in ("widths",)}  # noqa: E731
        assert keep(sub.config) == keep(fixed.config)
    assert sorted(split_by_steps(grown)) == [1, 2, 3]


def test_limits_by_steps_derives_once_per_distinct_horizon(tmp_path):
    run = _run(tmp_path / "r", (8, 16, 32), "8:1,16:2,32:2", samples=1)
    calls = []
    lims = limits_by_steps(run, lambda sub: calls.append((sub.config["steps"], sub.config["widths"])) or sub.config["steps"])
    assert lims == {1: 1, 2: 2} and calls == [(1, [8]), (2, [16, 32])]
    cache = {}
    limits_by_steps(run, lambda sub: calls.append(0), cache=cache)
    limits_by_steps(run, lambda sub: calls.append(0), cache=cache)
    assert calls.count(0) == 2  # once per T, not per call


# --- resume ------------------------------------------------------------------------------------

def test_resume_refuses_a_changed_rule_and_grows_widths_with_their_own_horizon(tmp_path):
    path = tmp_path / "r"
    _run(path, (8,), "8:1,16:2,32:3", samples=1)
    for other in ("8:1,16:2,32:2", "2", "ceil(log2(n)) - 2"):
        with pytest.raises(RunError, match=r"cannot resume .*`steps` was '8:1,16:2,32:3', now"):
            _run(path, (8,), other, samples=1, resume=True)
    with pytest.raises(SpecError, match="add 64:T"):
        _run(path, (64,), "8:1,16:2,32:3", samples=1, resume=True)
    run = _run(path, (16,), "8:1,16:2,32:3", samples=1, resume=True)
    assert {r["width"]: r["steps"] for r in run.records} == {8: 1, 16: 2}
    assert run.config["widths"] == [8, 16] and run.config["steps_rule"] == "8:1,16:2,32:3"
    # a fixed run cannot be resumed with a rule either
    _run(tmp_path / "f", (8,), 2, samples=1)
    with pytest.raises(RunError, match=r"`steps` was '2', now '8:2'"):
        _run(tmp_path / "f", (8,), "8:2", samples=1, resume=True)
    _run(tmp_path / "f", (8,), "1+1", samples=2, resume=True)  # the same fixed horizon, written otherwise


def test_readers_for_one_horizon_refuse_a_rule_run_and_report_reads_it(tmp_path, capsys):
    path = tmp_path / "r"
    _run(path, (8, 16), "8:1,16:2", samples=1)
    with pytest.raises(RunError, match="own number of steps"):
        load_run(path)
    assert load_run(path, horizons=True).config["steps"] is None
    # report reads a rule run (each width against the limit at its own T); this run's data ({"kind": "test"})
    # cannot be rebuilt, so it says why there is no comparison instead of refusing the run
    assert main(["report", str(path), "--out", str(tmp_path / "rep")]) == 0
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "T(n) = `8:1,16:2`" in md and "n = 8: T = 1, n = 16: T = 2" in md and "No comparison with the exact limit" in md
    # a record whose T disagrees with the rule is corruption
    recs = _lines(path)
    recs[0]["steps"] = 2
    (path / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    with pytest.raises(RunError, match="has steps=2, the rule '8:1,16:2' gives 1; the run is corrupt"):
        load_run(path, horizons=True)


# --- fixed horizons: exactly today's run -------------------------------------------------------------

#: run.json keys of a sample run before horizon rules existed
_FIXED_KEYS = {"schema", "polyloss_version", "depth", "steps", "param", "recipe", "degree", "seed", "data", "window",
               "backend", "sampler", "lazy_min_width", "widths", "samples", "m", "input_dim", "n_grid", "minimiser",
               "curve_etas"}
_RECORD_KEYS = {"width", "sample", "seed", "sampler", "loss_coefficients", "accurate_coefficients", "eta_opt",
                "loss_at_eta_opt", "at_edge", "local_minima", "curve_loss", "seconds"}


@pytest.mark.parametrize("steps", [2, "2", "1+1", StepsRule.parse(2)])
def test_a_fixed_integer_rule_is_todays_run(tmp_path, steps):
    ref = _run(tmp_path / "ref", (8, 16), 2)
    got = _run(tmp_path / "got", (8, 16), steps)
    a, b = (json.loads((tmp_path / d / "run.json").read_text()) for d in ("ref", "got"))
    assert a == b and set(a) == _FIXED_KEYS and a["steps"] == 2 and a["degree"] == 4
    ra, rb = _lines(tmp_path / "ref"), _lines(tmp_path / "got")
    assert [_strip(r) for r in ra] == [_strip(r) for r in rb]
    assert all(_RECORD_KEYS <= set(r) and "steps" not in r for r in rb)
    assert _RECORD_KEYS >= {k for r in rb for k in r} - {"window", "minima_certified", "requested_window"}
    assert got.config == ref.config and split_by_steps(got) == {2: got}


# --- CLI -------------------------------------------------------------------------------------------

CLI = ["sample", "--depth", "1", "--samples", "1", "--d", "4", "--m", "10", "--quiet"]


@pytest.mark.parametrize("steps, widths, fragment", [
    ("__import__('os').system('echo hi')", "8", "may be called"),
    ("n*", "8", "not a valid expression"),
    ("8:1", "8,16", "add 16:T"),
    ("n/3", "8", "it gives 2.66667"),
    ("n", "8,16", "it gives 16, must give an integer in [1, 12]"),
    ("0", "8", "must be >= 1"),
])
def test_cli_bad_rules_exit_2_with_one_line(tmp_path, capsys, steps, widths, fragment):
    out = tmp_path / "o"
    assert main(CLI + ["--widths", widths, "--steps", steps, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and fragment in err and "steps" in err, err
    assert not out.exists()  # refused before any work


def test_cli_rule_run_prints_each_width_horizon(tmp_path, capsys):
    out = tmp_path / "o"
    assert main(CLI + ["--widths", "8,16", "--steps", "8:1,16:2", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "T=8:1,16:2" in text
    rows = [line.split() for line in text.splitlines() if line.strip()[:1].isdigit()]
    assert [(r[0], r[1]) for r in rows] == [("8", "1"), ("16", "2")]
    assert [r["steps"] for r in _lines(out)] == [1, 2]


def test_compare_takes_each_width_against_the_limit_at_its_own_horizon(tmp_path):
    """compare on a rule run = compare on the fixed-T runs, width by width (same means, limits and z),
    judged as one Bonferroni family; the gaps use each width's own T (recomputed here per fixed run)."""
    from polyloss.compare import compare
    from polyloss.gaps import per_width_gaps

    def run(path, widths, steps):  # synthetic data described in run.json, so compare can rebuild them
        return run_sample(path, depth=1, sampling=SamplingSpec(widths, 3, 3), training=TrainingSpec(steps),
                          param=Parametrization.preset("mup"), data=linear_teacher(D, M, seed=data_seed(3)),
                          data_description={"kind": "synthetic", "teacher": "linear", "d": D, "m": M, "noise": 0.0},
                          progress=False, n_grid=24, sampler="dense")

    widths, rule = (8, 16, 32, 64), "8:1,16:1,32:2,64:2"
    run(tmp_path / "rule", widths, rule)
    c = compare(tmp_path / "rule")
    assert c.steps_rule == rule and sorted(c.horizons) == [1, 2]
    assert c.horizons[1]["widths"] == [8, 16] and c.horizons[2]["widths"] == [32, 64]
    fixed = {T: compare(run(tmp_path / f"f{T}", ws, T).path, gaps=False)
             for T, ws in ((1, (8, 16)), (2, (32, 64)))}
    assert c.n_comparisons == sum(f.n_comparisons for f in fixed.values())
    want = {(r.width, r.quantity): r for f in fixed.values() for r in f.rows}
    got = {(r.width, r.quantity): r for r in c.rows}
    assert set(got) == set(want)
    for key, r in got.items():
        w = want[key]
        assert (r.mean, r.se, r.limit, r.z, r.p_value) == (w.mean, w.se, w.limit, w.z, w.p_value), key
        assert r.consistent == (r.p_value >= c.level / c.n_comparisons)
    for T, f in fixed.items():
        own = per_width_gaps(load_run(f.run).records, f.limit)
        for n, row in own.items():
            np.testing.assert_array_equal(c.gaps["window"].per_width[n]["c"], row["c"])
            np.testing.assert_array_equal(c.gaps["window"].per_width[n]["a"], row["a"])
    doc = c.to_json()
    assert doc["steps_rule"] == rule and sorted(doc["horizons"]) == ["1", "2"]
    with pytest.raises(RunError, match="derivation auto"):  # one derivation file cannot serve two horizons
        compare(tmp_path / "rule", str(tmp_path / "x.json"))


def test_report_on_a_rule_run_shows_the_limit_at_each_horizon_and_the_gaps(tmp_path):
    """report on a growing-horizon run: a T -> widths, η_∞^(T) table (the limits compare derives per T),
    every row against the limit at its width's own T, the transfer-gap verdict, figures labelled so."""
    from polyloss.compare import compare
    from polyloss.report import report

    path = tmp_path / "rule"
    run_sample(path, depth=1, sampling=SamplingSpec((8, 16, 32, 64), 3, 3), training=TrainingSpec("8:1,16:1,32:2,64:2"),
               param=Parametrization.preset("mup"), data=linear_teacher(D, M, seed=data_seed(3)),
               data_description={"kind": "synthetic", "teacher": "linear", "d": D, "m": M, "noise": 0.0},
               progress=False, n_grid=24, sampler="dense")
    c = compare(path)
    rep = report([path], tmp_path / "rep", dense_curves=False)
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "**Exact limits, one per horizon**" in md
    for T, h in c.horizons.items():  # the per-T table: T | widths | η_∞^(T)
        assert f"| {T} | {', '.join(map(str, h['widths']))} | {h['limit'].eta_window_min:.12g} |" in md, md
    assert c.horizons[1]["limit"].eta_window_min != c.horizons[2]["limit"].eta_window_min
    assert f"fast transfer **{c.gaps['window'].verdict}**" in md
    entry = next(iter(rep.numbers["runs"].values()))
    assert entry["config"]["steps_rule"] == "8:1,16:1,32:2,64:2" and entry["config"]["steps"] is None
    assert sorted(entry["compare"]["horizons"]) == ["1", "2"]
    # every table row's limit is the limit at the row's own T
    for r in c.rows:
        T = 1 if r.width <= 16 else 2
        if r.quantity == "eta_n":
            assert r.limit == c.horizons[T]["limit"].eta_window_min
    figs = rep.figures
    b = next(v for k, v in figs.items() if k.startswith("fig_b_eta"))
    assert b["limit_by_width"]["steps"] == [1, 1, 2, 2]
    assert any("own T" in t for t in b["axes"]["legend"]) and "own T" in b["axes"]["title"]
    a = next(v for k, v in figs.items() if k.startswith("fig_a_loss"))
    assert sorted(a) == sorted(k for k in a if "T=" in k) and len(a) == 1  # one panel per horizon group
    assert any(k.startswith("fig_g_gaps") for k in figs)
    assert "own T" in md and "t=T(n)=8:1,16:1,32:2,64:2" in md
