"""Rate fits, change-point test and extrapolation on synthetic data with planted answers."""

import numpy as np
import pytest

from polyloss.analysis import change_point, deceleration, extrapolate, fit_rate, fit_scaling
from polyloss.errors import SpecError

WIDTHS = [2**k for k in range(6, 15)]


def planted(rms_of_n, seeds=300, ref=1.5, seed=0):
    rng = np.random.default_rng(seed)
    return {n: ref + rms_of_n(n) * rng.standard_normal(seeds) for n in WIDTHS}


def test_fit_recovers_planted_exponent():
    fit = fit_rate(planted(lambda n: 2.0 * n**-0.5), reference=1.5)
    assert fit.ci_low < -0.5 < fit.ci_high
    assert fit.ci_high - fit.ci_low < 0.1  # precise enough to exclude n^-1 and n^0
    assert abs(fit.slope + 0.5) < 0.05


def test_fit_sees_a_wrong_reference_as_no_convergence():
    fit = fit_rate(planted(lambda n: 2.0 * n**-0.5), reference=1.6)  # bias 0.1 dominates at large n
    assert fit.ci_high > -0.3


def test_change_point_finds_planted_change():
    # n^-1/2 up to 1024, then n^-1 (continuous)
    rms = lambda n: n**-0.5 if n <= 1024 else 1024**-0.5 * (n / 1024) ** -1.0
    cp = change_point(planted(rms, seeds=400), reference=1.5)
    assert cp.verdict == "change", cp.reason
    assert 512 <= cp.break_width <= 2048
    assert cp.slope_before == pytest.approx(-0.5, abs=0.1) and cp.slope_after == pytest.approx(-1.0, abs=0.15)


def test_change_point_finds_none_in_pure_power_law():
    cp = change_point(planted(lambda n: n**-0.5, seeds=400, seed=1), reference=1.5)
    assert cp.verdict == "no change", cp.reason
    assert cp.p_value >= 0.01


def test_change_point_says_cannot_tell_with_few_widths_or_noise():
    few = {n: v for n, v in planted(lambda n: n**-0.5).items() if n <= 256}
    assert change_point(few, reference=1.5).verdict == "cannot tell"
    noisy = planted(lambda n: n**-0.5, seeds=3, seed=2)
    assert change_point(noisy, reference=1.5).verdict == "cannot tell"


def test_extrapolation_recovers_limit():
    rng = np.random.default_rng(3)
    groups = {n: 2.0 + 3.0 / n + 0.5 * n**-0.5 * rng.standard_normal(200) for n in WIDTHS}
    ex = extrapolate(groups)
    assert abs(ex.value - 2.0) < 4 * ex.se and ex.se < 0.01


def test_scaling_slope_of_sp_like_eta():
    rng = np.random.default_rng(4)
    groups = {n: 5.0 / n * (1 + 0.1 * rng.standard_normal(50)) for n in WIDTHS}
    fit = fit_scaling(groups)
    assert fit.ci_low < -1.0 < fit.ci_high and fit.ci_high < -0.95


def test_too_few_widths_is_an_error():
    with pytest.raises(SpecError, match="at least 3 widths"):
        fit_rate({64: [1.0, 2.0], 128: [1.0, 1.5]})


def test_change_point_runs_at_the_minimum_number_of_widths():
    # 5 widths with 3 on each side of the break: exactly one admissible break (the middle width)
    groups = {n: v for n, v in planted(lambda n: n**-0.5).items() if n <= 1024}
    cp = change_point(groups, reference=1.5, min_side=3)
    assert cp.break_width == 256 and cp.verdict in ("no change", "cannot tell")


def test_scaling_with_finite_size_correction_recovers_asymptotic_exponent():
    rng = np.random.default_rng(5)
    # η_n = 28/n · exp(−3 n^-1/2): the plain slope is biased, the corrected one is not
    groups = {n: 28.0 / n * np.exp(-3 * n**-0.5) * (1 + 0.05 * rng.standard_normal(64)) for n in WIDTHS}
    plain = fit_scaling(groups)
    corrected = fit_scaling(groups, correction=0.5)
    assert not plain.ci_low <= -1.0 <= plain.ci_high
    assert corrected.ci_low <= -1.0 <= corrected.ci_high and corrected.ci_high - corrected.ci_low < 0.1


def test_deceleration_tells_convergence_to_a_constant_from_power_law_drift():
    rng = np.random.default_rng(6)
    widths = (128, 512, 2048)
    noisy = lambda f: {n: f(n) * (1 + 0.1 * rng.standard_normal(6)) for n in widths}  # noqa: E731
    up = deceleration(noisy(lambda n: 4.5 - 40 / n**0.5))  # rising to a non-zero limit, as C8 sees under μP
    assert up.first > up.last > 0 and up.decelerating
    down = deceleration(noisy(lambda n: 0.5 + 50 / n))  # falling to a non-zero limit: the same in the other direction
    assert down.first < down.last < 0 and down.decelerating
    for c in (0.5, -1.0):  # a pure power law drifts at a constant rate: no deceleration
        drift = deceleration(noisy(lambda n: 3.0 * n**c))
        assert not drift.decelerating and abs(drift.first - c) < 0.2  # 0.2 ≈ 5 s.e. of a local slope here
    with pytest.raises(SpecError, match="at least 3 widths"):
        deceleration({64: [1.0, 2.0], 128: [1.0, 1.5]})


def _scaling_groups(exponent, seeds=200, seed=0):
    rng = np.random.default_rng(seed)
    return {n: 3.0 * n**exponent * (1 + 0.05 * rng.standard_normal(seeds)) for n in WIDTHS[:6]}


def test_scaling_verdict_rule():
    from polyloss.analysis import scaling_rule, scaling_verdict

    assert scaling_verdict(_scaling_groups(-1.0), -1.0).verdict == "pass"
    assert scaling_verdict(_scaling_groups(-0.5), -1.0).verdict == "fail"  # half the predicted drift
    assert scaling_verdict(_scaling_groups(0.0), -1.0).verdict == "fail"  # no drift at all
    sv = scaling_verdict(_scaling_groups(-1.0), -1.0)
    assert sv.words == "consistent" and sv.rule == scaling_rule(-1.0) and "[-1.05, -0.95]" in sv.rule
    assert set(sv.corrected) == {"n^-1.0", "n^-0.5"} and sv.fit.widths == tuple(WIDTHS[3:6])


def test_nearest_basin_and_distance():
    from polyloss.analysis import basin_distance, nearest_basin

    v = [0.7, 0.9, 1.59, 1.61, 3.0]
    assert nearest_basin(v, (0.8, 2.4)).tolist() == [0, 0, 0, 1, 1]
    np.testing.assert_allclose(basin_distance(v, (0.8, 2.4)), [0.1, 0.1, 0.79, 0.79, 0.6])
    with pytest.raises(SpecError):
        nearest_basin(v, ())
