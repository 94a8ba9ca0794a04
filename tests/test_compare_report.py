"""compare: planted bias vs unbiased samples, a real L = 1 run vs kernel GD's closed form; report files."""

import json
from fractions import Fraction

import numpy as np
import pytest

from polyloss.cli import main
from polyloss.compare import Limit, compare, run_dataset
from polyloss.errors import RunError
from polyloss.sampling import load_run

LIMIT = [0.5, -1.0, 0.7, -0.2]
ETA_INF = 0.8


def _run(tmp_path, name, extra=()):
    out = tmp_path / name
    args = ["sample", "--depth", "2", "--steps", "1", "--d", "4", "--m", "12", "--samples", "2", "--quiet",
            "--widths", "16,32,64,128", "--out", str(out), *extra]
    assert main(args) == 0
    return out


def _record(n, s, c, eta, n_curve):
    return json.dumps({"width": n, "sample": s, "loss_coefficients": list(map(float, c)), "eta_opt": float(eta),
                       "loss_at_eta_opt": 0.1, "at_edge": False, "local_minima": [{"eta": float(eta), "loss": 0.1, "at_edge": False}],
                       "curve_loss": [0.5] * n_curve})


def _write_planted(run_dir, lines):
    """Planted records hold c_0..c_3: run.json says so (a reader refuses records that do not match its degree)."""
    cfg = json.loads((run_dir / "run.json").read_text())
    cfg["degree"] = len(LIMIT) - 1
    (run_dir / "run.json").write_text(json.dumps(cfg))
    (run_dir / "records.jsonl").write_text("\n".join(lines) + "\n")


def _plant(run_dir, bias=0.0, seeds=60, seed=0):
    """Replace the records by planted ones: c_k = limit + noise/sqrt(n) (+ bias on c_1)."""
    rng = np.random.default_rng(seed)
    cfg = load_run(run_dir).config
    lines = []
    for n in cfg["widths"]:
        for s in range(seeds):
            c = np.array(LIMIT) + rng.standard_normal(4) / np.sqrt(n)
            c[1] += bias
            eta = ETA_INF + rng.standard_normal() / np.sqrt(n)
            lines.append(_record(n, s, c, eta, len(cfg["curve_etas"])))
    _write_planted(run_dir, lines)


BASINS = (0.8, 2.4)


def _plant_two_basins(run_dir, seeds=40, seed=1, bias_in_basin2=0.0):
    """η_n of each seed near one of two minimisers of the limit (share 60/40), noise ~ 0.3/sqrt(n)."""
    rng = np.random.default_rng(seed)
    cfg = load_run(run_dir).config
    lines = []
    for n in cfg["widths"]:
        for s in range(seeds):
            b = 0 if s < int(0.6 * seeds) else 1
            eta = BASINS[b] + 0.3 * rng.standard_normal() / np.sqrt(n) + (bias_in_basin2 if b == 1 else 0.0)
            c = np.array(LIMIT) + rng.standard_normal(4) / np.sqrt(n)
            lines.append(_record(n, s, c, eta, len(cfg["curve_etas"])))
    _write_planted(run_dir, lines)


TWO_BASIN_LIMIT = Limit(tuple(LIMIT), BASINS[0], BASINS[0], BASINS[0], 4.0, False, "planted", BASINS)


def test_two_basins_are_compared_per_basin_not_averaged(tmp_path):
    run = _run(tmp_path, "tb")
    _plant_two_basins(run)
    cmp_ = compare(run, limit=TWO_BASIN_LIMIT)
    eta_rows = [r for r in cmp_.rows if r.quantity.startswith("eta_n")]
    assert {r.quantity for r in eta_rows} == {"eta_n[1]", "eta_n[2]"}  # no row averages across basins
    for r in eta_rows:
        assert r.limit == BASINS[r.basin]
        assert abs(r.mean - BASINS[r.basin]) < 0.2  # the basins are separated
        assert r.share == pytest.approx(0.6 if r.basin == 0 else 0.4)
    assert cmp_.consistent, [r for r in cmp_.rows if not r.consistent]
    # the same seeds compared with the window minimiser alone (the old rule) are flagged
    one = Limit(tuple(LIMIT), BASINS[0], BASINS[0], BASINS[0], 4.0, False, "planted", (BASINS[0],))
    assert not compare(run, limit=one).consistent
    doc = cmp_.to_json()
    assert doc["basins"] == list(BASINS) and "nearest" in doc["basin_rule"]
    json.dumps(doc, allow_nan=False)  # strict JSON


def test_a_real_inconsistency_within_one_basin_is_still_flagged(tmp_path):
    run = _run(tmp_path, "tbb")
    _plant_two_basins(run, bias_in_basin2=0.3)
    cmp_ = compare(run, limit=TWO_BASIN_LIMIT)
    bad = {(r.width, r.quantity) for r in cmp_.rows if not r.consistent}
    assert {(64, "eta_n[2]"), (128, "eta_n[2]")} <= bad
    assert all(q == "eta_n[2]" for _, q in bad)


def test_one_seed_basin_is_reported_not_tested(tmp_path):
    run = _run(tmp_path, "one")
    cfg = load_run(run).config
    lines = [_record(n, s, LIMIT, BASINS[0] + 0.01 * s, len(cfg["curve_etas"])) for n in cfg["widths"] for s in range(5)]
    lines.append(_record(128, 5, LIMIT, BASINS[1], len(cfg["curve_etas"])))
    _write_planted(run, lines)
    cmp_ = compare(run, limit=TWO_BASIN_LIMIT)
    (lone,) = [r for r in cmp_.rows if r.quantity == "eta_n[2]"]
    assert lone.width == 128 and not lone.tested and lone.verdict.startswith("not tested")
    assert lone.to_dict()["se"] is None


PLANTED_LIMIT = Limit(tuple(LIMIT), ETA_INF, ETA_INF, ETA_INF, 4.0, False, "planted")


def test_compare_passes_unbiased_samples(tmp_path):
    run = _run(tmp_path, "u")
    _plant(run)
    cmp_ = compare(run, limit=PLANTED_LIMIT)
    assert cmp_.consistent, [r for r in cmp_.rows if not r.consistent]
    assert cmp_.n_comparisons == 4 * 5  # 4 widths × (c_0..c_3, η_n)


def test_compare_flags_planted_bias(tmp_path):
    run = _run(tmp_path, "b")
    _plant(run, bias=0.05)
    cmp_ = compare(run, limit=PLANTED_LIMIT)
    bad = {(r.width, r.quantity) for r in cmp_.rows if not r.consistent}
    assert {(128, "c_1"), (64, "c_1")} <= bad
    assert all(q == "c_1" for _, q in bad)


def _kernel_gd_limit(data, steps):
    """L = 1 at n = ∞ is kernel GD: 𝓛_∞ = (1/2m) ‖(I − η K̄)^t y‖² (THEORY §5), exact in rationals."""
    m, d = data.m, data.d
    X = [[Fraction(float(v)) for v in row] for row in data.X]  # the floats' exact binary values
    K = [[sum(a * b for a, b in zip(X[i], X[j])) / (d * m) for j in range(m)] for i in range(m)]
    y = [Fraction(float(v)) for v in data.y]
    from math import comb

    vecs, v = [], y
    for j in range(steps + 1):
        vecs.append([comb(steps, j) * (-1) ** j * x for x in v])
        v = [sum(K[i][k] * v[k] for k in range(m)) for i in range(m)]
    coeffs = [Fraction(0)] * (2 * steps + 1)
    for a in range(steps + 1):
        for b in range(steps + 1):
            coeffs[a + b] += sum(p * q for p, q in zip(vecs[a], vecs[b])) / (2 * m)
    return coeffs


def test_real_L1_run_is_consistent_with_kernel_gd(tmp_path):
    out = tmp_path / "k"
    assert main(["sample", "--depth", "1", "--steps", "2", "--d", "3", "--m", "8", "--samples", "30", "--quiet",
                 "--widths", "256,1024", "--out", str(out)]) == 0
    run = load_run(out)
    coeffs = _kernel_gd_limit(run_dataset(run), 2)
    P = np.polynomial.Polynomial([float(c) for c in coeffs])
    crit = [r.real for r in P.deriv().roots() if abs(r.imag) < 1e-12 and 0 < r.real <= run.config["window"]]
    eta_w = min(crit + [run.config["window"]], key=P)
    lim = Limit(tuple(coeffs), eta_w, min(crit) if crit else None, None, run.config["window"], True, "kernel GD")
    cmp_ = compare(out, limit=lim)
    assert cmp_.consistent, [r for r in cmp_.rows if not r.consistent]
    # and the deviation shrinks with width
    rel = {(r.width, r.quantity): r.rel_rms for r in cmp_.rows}
    assert rel[(1024, "c_2")] < rel[(256, "c_2")]
    # the symbolic engine's limit (derived on the run's data) is the same polynomial, exactly
    from polyloss.compare import limit_for_run

    auto = limit_for_run(run)
    assert list(auto.loss_coefficients) == coeffs
    assert auto.eta_window_min == pytest.approx(eta_w, rel=1e-12)


def test_compare_refuses_non_mup_and_empty_and_missing(tmp_path):
    run = _run(tmp_path, "sp", ["--param", "sp"])
    with pytest.raises(RunError, match="muP"):
        compare(run)
    with pytest.raises(RunError, match="does not exist"):
        compare(tmp_path / "nope")
    empty = _run(tmp_path, "e")
    (empty / "records.jsonl").write_text("")
    with pytest.raises(RunError, match="no finished records"):
        compare(empty, limit=PLANTED_LIMIT)


def test_compare_rejects_mismatched_derivation(tmp_path):
    from polyloss.data import linear_teacher
    from polyloss.derive import derive

    run = _run(tmp_path, "m")
    data = run_dataset(load_run(run))
    (tmp_path / "d.json").write_text(json.dumps(derive(3, 1, data=data).to_json()))
    with pytest.raises(RunError, match="depth=3"):
        compare(run, str(tmp_path / "d.json"))
    (tmp_path / "o.json").write_text(json.dumps(derive(2, 1, data=linear_teacher(4, 12, seed=99)).to_json()))
    with pytest.raises(RunError, match="other data"):
        compare(run, str(tmp_path / "o.json"))
    (tmp_path / "c.json").write_text(json.dumps(derive(2, 1).to_json()))
    with pytest.raises(RunError, match="closed form"):
        compare(run, str(tmp_path / "c.json"))
    (tmp_path / "ok.json").write_text(json.dumps(derive(2, 1, data=data, window=load_run(run).config["window"]).to_json()))
    assert compare(run, str(tmp_path / "ok.json")).limit.exact
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(RunError, match="JSON"):
        compare(run, str(tmp_path / "x.json"))


@pytest.mark.parametrize("args,needle", [
    (["compare", "/nonexistent-run"], "does not exist"),
    (["compare", "{run}", "--level", "2"], "level"),
    (["report", "/nonexistent-run", "--out", "{tmp}/r"], "run directory"),
])
def test_cli_bad_inputs_are_one_line(tmp_path, capsys, args, needle):
    run = _run(tmp_path, "c")
    capsys.readouterr()
    args = [a.replace("{run}", str(run)).replace("{tmp}", str(tmp_path)) for a in args]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err, err


def test_report_writes_every_file_with_the_data_shown(tmp_path):
    from polyloss.report import report

    common = ["--d", "5", "--m", "20", "--quiet", "--widths", "16,32,64"]
    sp, sw = tmp_path / "sp", tmp_path / "sw"
    assert main(["sample", "--depth", "2", "--steps", "1", "--samples", "6", "--param", "sp", "--out", str(sp)] + common) == 0
    assert main(["sweep", "--depth", "2", "--steps", "1", "--seeds", "2", "--etas", "log:0.05:6:12", "--out", str(sw)] + common) == 0
    rep = report([sp, sw], tmp_path / "rep")
    names = {p.split("/")[-1] for p in rep.files}
    assert {"report.html", "report.md", "report.json"} <= names
    assert sum(n.endswith(".png") for n in names) == len(rep.figures) == 4  # (a), (b), (e) sweep curves, (e) eta* vs width
    for f in rep.files:
        assert (tmp_path / "rep" / f.split("/")[-1]).stat().st_size > 0
    figs = rep.figures
    (b,) = [v for k, v in figs.items() if k.startswith("fig_b")]
    assert b["width"] == [16, 32, 64] and len(b["mean"]) == 3
    run = load_run(sp)
    assert b["mean"][0] == pytest.approx(np.mean([r["eta_opt"] for r in run.records if r["width"] == 16]))
    (a,) = [v for k, v in figs.items() if k.startswith("fig_a")]
    curves = next(iter(a.values()))
    assert {k for k in curves if isinstance(k, int)} == {16, 32, 64} and len(curves[16]["eta"]) == len(curves[16]["loss"]) > 50
    # SP: the curves are dense around the minima, which lie far below the μP window scale
    lo, hi = curves["focus"]
    means = b["mean"]
    window = load_run(sp).config["window"]
    assert lo <= min(means) and max(means) <= hi and hi / lo <= 10.001 * max(means) / min(means) and hi < window / 10
    for n, m in zip(b["width"], means):
        etas = np.array(curves[n]["eta"])
        assert np.sum((etas > m / 2) & (etas < 2 * m)) >= 15, n  # dense near this width's optimum
    # the dense curves are the same networks' losses: the minimum of each seed-mean curve sits near the mean η_n
    assert "re-evaluated" in curves["grid"]
    assert b["reference"]["slope"] == -1.0  # SP: the power-counting prediction n^-1 is drawn
    for fig in figs.values():
        for panel in ([fig] if "axes" in fig else [v for v in fig.values() if isinstance(v, dict) and "axes" in v]):
            ax = panel["axes"]
            assert ax["title"] and ax["xlabel"] and ax["ylabel"], ax
            assert not any("[" in t and "]" in t and ("sp" in t or "sw" in t) for t in ax["legend"]), ax["legend"]
            assert not any(str(tmp_path) in t for t in ax["legend"] + [ax["title"]])
    (e,) = [v for k, v in figs.items() if k.startswith("fig_e_sweep")]
    # linear + GD sweep: the trained losses equal the polynomial's (same networks)
    np.testing.assert_allclose(e[32]["measured"], e[32]["predicted"], rtol=1e-10)
    doc = json.loads((tmp_path / "rep" / "report.json").read_text())
    (entry,) = doc["runs"].values()
    assert entry["eta_scaling"]["predicted_exponent"] == -1.0 and entry["eta_scaling"]["ci_low"] < entry["eta_scaling"]["slope"]
    html = (tmp_path / "rep" / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 4


def test_report_shows_the_limits_minima_for_t2(tmp_path):
    from polyloss.report import report

    run = tmp_path / "t2"
    assert main(["sample", "--depth", "2", "--steps", "2", "--d", "4", "--m", "10", "--samples", "4", "--quiet",
                 "--widths", "16,32,64", "--out", str(run)]) == 0
    rep = report([run], tmp_path / "rep")
    (b,) = [v for k, v in rep.figures.items() if k.startswith("fig_b")]
    lim = compare(run).limit
    assert b["eta_inf"] == lim.eta_window_min
    assert sorted(b["limit_other_minima"] + [b["eta_inf"]]) == pytest.approx(sorted(lim.minima))
    (c,) = [v for k, v in rep.figures.items() if k.startswith("fig_c")]
    assert "eta_n" in c and "reference" in c and c["reference"]["slope"] == -0.5


def test_report_rejects_empty_run(tmp_path):
    from polyloss.report import report

    run = _run(tmp_path, "e")
    (run / "records.jsonl").write_text("")
    with pytest.raises(RunError, match="no finished records"):
        report([run], tmp_path / "rep")


def test_report_compares_two_basins_per_basin(tmp_path):
    """A planted two-basin run and a limit with two minimisers (a derivation file): the report's
    table has one η_n row per basin with its share, no INCONSISTENT, and figure (b) per basin."""
    from polyloss.report import report

    run = _run(tmp_path, "tb")
    _plant_two_basins(run)
    window = load_run(run).config["window"]
    coeffs = ["1/2", "-1", "7/10"]
    doc = {"schema": "polyloss.derivation/1", "spec": {"depth": 2, "steps": 1}, "loss_coefficients": coeffs,
           "critical_points": [{"kind": "min", "eta": str(BASINS[0]), "loss": "0.1"},
                               {"kind": "max", "eta": "1.6", "loss": "0.3"},
                               {"kind": "min", "eta": str(BASINS[1]), "loss": "0.2"}]}
    assert BASINS[1] < window
    (tmp_path / "lim.json").write_text(json.dumps(doc))
    rep = report([run], tmp_path / "rep", derivation=str(tmp_path / "lim.json"))
    md = (tmp_path / "rep" / "report.md").read_text()
    eta_lines = [line for line in md.splitlines() if "| η_n[" in line]
    assert len(eta_lines) == 8 and not any("INCONSISTENT" in line for line in eta_lines)  # (c_3 is planted off this limit)
    assert "| 128 | η_n[1] | 60% |" in md and "| 128 | η_n[2] | 40% |" in md
    assert "nearest" in md
    (b,) = [v for k, v in rep.figures.items() if k.startswith("fig_b")]
    means = [s["mean"][-1] for s in b["series"].values()]
    assert len(means) == 2 and abs(means[0] - BASINS[0]) < 0.1 and abs(means[1] - BASINS[1]) < 0.1
    (c,) = [v for k, v in rep.figures.items() if k.startswith("fig_c")]
    assert "nearest" in c["eta_n"]["label"]  # the rate of η_n is the distance to the nearest minimiser (C6's)
    entry = next(iter(json.loads((tmp_path / "rep" / "report.json").read_text())["runs"].values()))
    assert entry["compare"]["basins"] == list(BASINS)


def test_report_one_seed_widths_print_a_dash_and_html_has_no_markdown(tmp_path):
    from polyloss.report import report

    run = tmp_path / "one"
    assert main(["sample", "--depth", "2", "--steps", "1", "--d", "4", "--m", "12", "--samples", "1", "--quiet",
                 "--param", "sp", "--widths", "16,32,64", "--out", str(run)]) == 0
    report([run], tmp_path / "rep")
    md = (tmp_path / "rep" / "report.md").read_text()
    html = (tmp_path / "rep" / "report.html").read_text()
    assert "nan" not in md.lower() and "± –" in md
    import re

    text = re.sub(r'src="data:image/png;base64,[^"]*"', "", html)
    assert "nan" not in text.lower() and "± –" in text
    assert "`" in md and "`" not in text and "<code>" in text  # run paths are code in Markdown, <code> in HTML
    assert "**" not in text and "*" not in re.sub(r"<style>.*</style>", "", text)


def test_report_leaves_out_records_whose_curve_is_off_the_grid(tmp_path):
    """Old runs: refined minimiser points leaked into curve_loss. Such records are left out of the
    curve figure (never drawn against the wrong η) and the report says how many and why."""
    from polyloss.report import report

    run = _run(tmp_path, "old", ["--samples", "3"])
    lines = (run / "records.jsonl").read_text().splitlines()
    for i in (0, 4):
        rec = json.loads(lines[i])
        rec["curve_loss"] = rec["curve_loss"] + [0.1, 0.2]
        lines[i] = json.dumps(rec)
    (run / "records.jsonl").write_text("\n".join(lines) + "\n")
    n_curve = len(load_run(run).config["curve_etas"])
    rep = report([run], tmp_path / "rep", dense_curves=False)
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "2 record(s) left out of the loss curves" in md and "curve grid" in md
    (a,) = [v for k, v in rep.figures.items() if k.startswith("fig_a")]
    panel = next(iter(a.values()))
    assert all(len(panel[n]["eta"]) == len(panel[n]["loss"]) for n in (16, 32, 64, 128))
    assert all(len(panel[n]["eta"]) <= n_curve for n in (16, 32, 64, 128))
    # the default re-evaluates every network on a dense grid and says the stored curves were not used
    report([run], tmp_path / "rep2")
    assert "not used: every network was re-evaluated" in (tmp_path / "rep2" / "report.md").read_text()


def test_report_sp_verdict_is_the_c3_rule(tmp_path):
    """`report` judges an SP run's η_n ∝ n^-1 with the same function and words as claim C3."""
    from polyloss.analysis import scaling_verdict
    from polyloss.checks import claim_ids  # finds the suites from a source checkout too (CI runs pytest there)
    from polyloss.report import report

    c3_sp_scaling = claim_ids()["C3"]

    run = tmp_path / "sp"
    assert main(["sample", "--depth", "2", "--steps", "1", "--d", "4", "--m", "12", "--samples", "6", "--quiet",
                 "--param", "sp", "--widths", "16,32,64,128", "--out", str(run)]) == 0
    report([run], tmp_path / "rep", dense_curves=False)
    entry = next(iter(json.loads((tmp_path / "rep" / "report.json").read_text())["runs"].values()))
    groups = {n: np.array([r["eta_opt"] for r in recs]) for n, recs in load_run(run).by_width().items()}
    sv = scaling_verdict(groups, -1.0)
    assert entry["eta_scaling"]["verdict"] == sv.verdict and entry["eta_scaling"]["slope"] == sv.fit.slope
    md = (tmp_path / "rep" / "report.md").read_text()
    assert f"**{sv.words}**" in md and sv.rule in md
    assert sv.rule in c3_sp_scaling.CLAIM.tolerance


# --- transfer gaps (polyloss.gaps) in compare and report --------------------------------------


def test_compare_cli_prints_the_gaps_and_the_json_gaps_block(tmp_path, capsys):
    run = _run(tmp_path, "g")
    assert main(["compare", str(run)]) == 0
    text = capsys.readouterr().out
    assert "transfer gaps" in text and "rule: transfer is fast when c_n = o(a_n)" in text
    assert text.count("fast transfer:") == 2 and "slope of medians" in text
    assert main(["compare", str(run), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out, parse_constant=lambda c: pytest.fail(f"non-strict JSON {c}"))
    assert doc["schema"] == "polyloss.compare/2"
    g = doc["gaps"]["window"]
    assert [s["width"] for s in g["summary"]] == [16, 32, 64, 128]
    assert set(g["summary"][0]) == {"width", "count", "a", "b", "c", "c/a"}
    assert set(g["rates"]) == {"mean", "median"} and set(g["rates"]["mean"]) == {"a", "b", "c", "c/a"}
    f = g["rates"]["mean"]["c"]
    assert f is not None and f["ci_low"] <= f["slope"] <= f["ci_high"]
    assert g["verdict"]["overall"] in ("fast", "not fast", "inconclusive")
    assert "CI lies below 0" in doc["gaps"]["rule"]
    cmp_ = compare(run)
    assert cmp_.gaps["window"].per_width[16]["b"].tolist() == [abs(r["eta_opt"] - cmp_.limit.eta_window_min)
                                                              for r in load_run(run).records if r["width"] == 16]


def test_compare_without_gaps_and_with_a_float_limit(tmp_path):
    run = _run(tmp_path, "pg")
    _plant(run, seeds=8)
    assert compare(run, limit=PLANTED_LIMIT, gaps=False).gaps is None
    assert compare(run, limit=PLANTED_LIMIT, gaps=False).to_json()["gaps"] is None
    g = compare(run, limit=PLANTED_LIMIT).gaps["window"]  # float coefficients: evaluated as the rationals they are
    lim_at = sum(Fraction(c) * Fraction(ETA_INF) ** k for k, c in enumerate(LIMIT))
    assert g.loss_inf == float(lim_at)
    assert g.per_width[16]["a"][0] == abs(float(Fraction(0.1) - lim_at))


def test_report_shows_the_gaps_with_figures_in_words(tmp_path):
    from polyloss.report import report

    run = _run(tmp_path, "gr")
    rep = report([run], tmp_path / "rep", dense_curves=False)
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "**Transfer gaps**" in md and "fast transfer **" in md and "slope of the seed median" in md
    figs = {k: v for k, v in rep.figures.items() if k.startswith("fig_g")}
    gaps_fig = [v for k, v in figs.items() if k.startswith("fig_g_gaps")]
    ratio_fig = [v for k, v in figs.items() if k.startswith("fig_g_ratio")]
    assert len(gaps_fig) == len(ratio_fig) == 1
    for panel in list(gaps_fig[0].values()) + [ratio_fig[0]]:
        ax = panel["axes"]
        assert ax["title"] and ax["xlabel"] and ax["ylabel"] and ax["xscale"] == "log" and ax["yscale"] == "log"
        assert any("reference slope" in t for t in ax["legend"])
    assert {"mean", "median"} == set(gaps_fig[0]) and set(gaps_fig[0]["mean"]) >= {"a", "b", "c"}
    assert {"mean", "median"} <= set(ratio_fig[0])
    assert any("transfer NOT fast" in t for t in ratio_fig[0]["axes"]["legend"])
    doc = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert doc["schema"] == "polyloss.report/2"
    (entry,) = doc["runs"].values()
    g = entry["compare"]["gaps"]["window"]
    assert ratio_fig[0]["mean"]["slope"] == g["rates"]["mean"]["c/a"]["slope"]
