"""Claim C15 (growing horizons, issue 12 part 5): the horizon rule, the decision rule on planted RMS groups,
the distance to the limit at each width's own T, and a tiny end-to-end run of the suite."""

import dataclasses
import math
from types import SimpleNamespace

import numpy as np
import pytest

from polyloss.analysis import fit_rate
from polyloss.checks import Context, _claims_package
from polyloss.horizon import StepsRule

_claims_package()
from polyloss.claims import c15_growing_horizon as c15  # noqa: E402


def test_the_rule_grows_slowly_and_gives_the_stated_horizons():
    rule = StepsRule.parse(c15.RULE)
    assert not rule.is_fixed
    # quick widths: log2(n)/4 = 1.5, 1.75, 2, 2.25, 2.5 -> ceil 2, 2, 2, 3, 3 (256 is exactly 2)
    assert rule.by_width((64, 128, 256, 512, 1024)) == {64: 2, 128: 2, 256: 2, 512: 3, 1024: 3}
    full = rule.by_width([2**k for k in range(7, 19)])
    assert sorted(set(full.values())) == [2, 3, 4, 5]
    # T(n) = o(√n): T/√n falls over every factor 16 in n (it may rise at a single doubling where T steps up)
    ratios = [full[n] / math.sqrt(n) for n in sorted(full)]
    assert all(b < a for a, b in zip(ratios, ratios[4:])) and ratios[-1] < 0.01


def _planted(slope, noise, seeds=24, widths=(64, 128, 256, 512, 1024), seed=0):
    rng = np.random.default_rng(seed)
    return {n: np.abs(n**slope * (1 + noise * rng.standard_normal(seeds))) for n in widths}


@pytest.mark.parametrize("slope, noise, expected", [
    (-0.5, 0.3, "pass"),     # distances shrink like n^-1/2
    (-1.0, 0.3, "pass"),
    (0.0, 0.3, "inconclusive"),   # no trend: the CI straddles 0 ... unless the noise is tiny
    (0.5, 0.3, "fail"),      # distances grow: the CI lies above 0
    (0.0, 0.0, "fail"),      # exactly constant: slope 0 with a zero-width CI lies at 0
])
def test_decision_rule_on_planted_rms_groups(slope, noise, expected):
    fit = fit_rate(_planted(slope, noise), 0.0, seed=0)
    assert c15.decide(fit) == expected, (fit.slope, fit.ci_low, fit.ci_high)


def test_decide_reads_only_the_ci():
    f = lambda lo, hi: SimpleNamespace(slope=(lo + hi) / 2, ci_low=lo, ci_high=hi)  # noqa: E731
    assert c15.decide(f(-0.9, -1e-9)) == "pass"
    assert c15.decide(f(-0.9, 0.0)) == "inconclusive"
    assert c15.decide(f(0.0, 0.4)) == "fail"
    assert c15.decide(f(-1e-9, 0.4)) == "inconclusive"


def test_distance_uses_the_limit_at_each_widths_own_horizon():
    def lim(*minima):
        return SimpleNamespace(minima=tuple(minima), eta_window_min=minima[0])

    records = [{"width": 8, "eta_opt": 1.1}, {"width": 8, "eta_opt": 0.8},
               {"width": 16, "eta_opt": 2.1}, {"width": 16, "eta_opt": 1.0}]
    run = SimpleNamespace(by_width=lambda: {n: [r for r in records if r["width"] == n] for n in (8, 16)})
    horizons = {1: {"widths": [8], "limit": lim(1.0)}, 2: {"widths": [16], "limit": lim(2.0, 5.0)}}
    d = c15.distances(run, horizons)
    np.testing.assert_allclose(d[8], [0.1, 0.2])
    np.testing.assert_allclose(d[16], [0.1, 1.0])  # 1.0 is nearest to T = 2's minimiser 2.0, not to T = 1's 1.0


def test_the_suite_end_to_end_on_a_tiny_scale(tmp_path):
    ctx = Context("quick", str(tmp_path), progress=False)
    ctx.scale = dataclasses.replace(ctx.scale, d=4, m=12, widths=(8, 16, 32, 64), seeds=4)
    v = c15.run(ctx)
    x = v.numbers
    assert x["steps_by_width"] == {"8": 1, "16": 1, "32": 2, "64": 2}
    assert sorted(x["limits"]) == ["1", "2"] and x["limits"]["1"]["widths"] == [8, 16]
    assert x["limits"]["1"]["eta_window_min"] != x["limits"]["2"]["eta_window_min"]
    fit = SimpleNamespace(ci_low=x["rate"]["ci"][0], ci_high=x["rate"]["ci"][1])
    assert v.verdict == x["verdict"] == c15.decide(fit)
    assert x["gaps"]["verdict"] in ("fast", "not fast", "inconclusive") and x["gaps"]["judged"] is False
    assert len(c15.figures(v)) == 2
