"""C14 (fast transfer): the decision rule on planted slope CIs, the shared runs, and the degenerate teacher's limit."""

import importlib
from types import SimpleNamespace

import pytest

from polyloss.checks import SCALES, claim_ids

c14 = claim_ids()["C14"]


def fit(lo, hi):
    return {"slope": (lo + hi) / 2, "ci": [lo, hi]}


@pytest.mark.parametrize("ci, expected", [
    ((-0.9, -0.2), "pass"),          # CI below 0: c/a decays, fast
    ((0.05, 0.6), "fail"),           # CI above 0: c/a grows
    ((-0.5, 0.2), "inconclusive"),   # contains 0
    ((-0.3, 0.0), "inconclusive"),   # touches 0: not strictly below
])
def test_fast_rule_on_planted_cis(ci, expected):
    assert c14.fast_rule(fit(*ci)) == expected


@pytest.mark.parametrize("ci, expected", [
    ((-0.34, 0.18), "pass"),         # slower than n^-1/2 and consistent with no decay
    ((-0.9, -0.3), "fail"),          # entirely below -1/4: a fast-transfer rate
    ((-0.6, 0.1), "inconclusive"),   # reaches below -1/2: not significantly slower than the generic rate
    ((-0.45, -0.05), "inconclusive"),  # above -1/2 but below 0 and not below -1/4
    ((-0.45, -0.26), "fail"),        # above -1/2 yet entirely below -1/4: still a fast-transfer rate
])
def test_not_fast_rule_on_planted_cis(ci, expected):
    assert c14.not_fast_rule(fit(*ci)) == expected


def test_missing_or_undefined_fit_is_inconclusive():
    assert c14.fast_rule(None) == c14.not_fast_rule(None) == "inconclusive"
    assert c14.fast_rule(fit(float("nan"), -0.1)) == "inconclusive"
    assert c14.fast_rule(SimpleNamespace(ci_low=-0.8, ci_high=-0.1)) == "pass"  # a RateFit works as well


def test_claim_verdict_combines_cases():
    expect = {"generic": "fast", "degenerate": "not fast"}
    per, v = c14.decide({"generic": fit(-0.9, -0.2), "degenerate": fit(-0.3, 0.2)}, expect)
    assert per == {"generic": "pass", "degenerate": "pass"} and v == "pass"
    # the same CI judged under the other expectation: a fast rate on the degenerate case fails the claim
    per, v = c14.decide({"generic": fit(-0.9, -0.2), "degenerate": fit(-0.9, -0.3)}, expect)
    assert per["degenerate"] == "fail" and v == "fail"
    per, v = c14.decide({"generic": fit(-0.6, 0.1), "degenerate": fit(-0.3, 0.2)}, expect)
    assert per == {"generic": "inconclusive", "degenerate": "pass"} and v == "inconclusive"
    _, v = c14.decide({"generic": fit(0.1, 0.4), "degenerate": fit(-0.6, 0.1)}, expect)
    assert v == "fail"  # fail beats inconclusive


class _Recorder:
    """A stand-in Context: records the first ``sample`` call of a suite, then stops it."""

    def __init__(self, mode):
        self.mode, self.scale, self.seed, self.calls = mode, SCALES[mode], 0, []

    def sample(self, name, **kw):
        self.calls.append((name, kw))
        raise StopIteration


@pytest.mark.parametrize("mode", ["quick", "full"])
def test_linear_cases_are_the_c2_and_c6_runs_themselves(mode):
    """C14 reuses C2's and C6's runs: same names and exactly the same arguments, so they are shared (resume)."""
    ctx = _Recorder(mode)
    mine = {kw["name"]: {k: v for k, v in kw.items() if k != "name"} for _, _, _, kw in c14.cases(ctx)}
    for suite in ("c2_mup_transfer", "c6_any_step"):
        ctx.calls = []
        with pytest.raises(StopIteration):
            claim_ids()  # the suites import as polyloss.claims.*
            importlib.import_module(f"polyloss.claims.{suite}").run(ctx)
        name, kw = ctx.calls[0]
        assert mine[name] == kw, (suite, name)
    teachers = {kw.get("teacher", "linear") for _, _, _, kw in c14.cases(ctx)}
    assert teachers == {"linear", "nonlinear", "principal"}
    expectations = {t: e for _, t, e, _ in c14.cases(ctx)}
    assert expectations == {"linear": "fast", "nonlinear": "fast", "principal": "not fast"}


def test_quick_cases_use_the_quick_scale():
    ctx = _Recorder("quick")
    own = [kw for _, _, _, kw in c14.cases(ctx) if kw["name"].startswith("C14-")]
    assert {(kw["teacher"], kw["depth"], kw["steps"]) for kw in own} == {("nonlinear", 2, 1), ("nonlinear", 2, 2),
                                                                        ("principal", 2, 1)}
    s = SCALES["quick"]
    assert all(kw["widths"] == s.widths and kw["samples"] == s.seeds for kw in own)


def _limit_loss(teacher):
    from polyloss.compare import _limit_from_derivation
    from polyloss.data import synthetic
    from polyloss.derive import derive
    from polyloss.gaps import exact_value
    from polyloss.poly import default_window
    from polyloss.sampling import data_seed

    s = SCALES["quick"]
    data = synthetic(teacher, s.d, s.m, 0.0, data_seed(0))
    window = default_window(data, 2)
    lim = _limit_from_derivation(derive(2, 1, data=data, window=window).to_json(), window, "test")
    return float(exact_value(lim.loss_coefficients, lim.eta_window_min)), float(data.moments(1)[0])


def test_principal_limit_interpolates_and_nonlinear_does_not():
    """The degenerate target: 𝓛_∞(η_∞) = 0 up to rounding of the data (so the first-order fluctuation of a_n
    vanishes); the non-linear target keeps a loss of order μ_0 in the limit."""
    loss, mu0 = _limit_loss("principal")
    assert 0 <= loss < 1e-20 * mu0
    loss, mu0 = _limit_loss("nonlinear")
    assert loss > 1e-3 * mu0
