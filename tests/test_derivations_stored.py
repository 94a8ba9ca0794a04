"""The files in derivations/ equal a fresh derivation (a fast subset in CI, all with -m slow)."""

from __future__ import annotations

import json
import os
from fractions import Fraction

import pytest

from polyloss.derive import STORED_CASES, SCHEMA, closed_form, evaluate_closed_form, stored_record

HERE = os.path.dirname(os.path.abspath(__file__))
STORE = os.path.join(os.path.dirname(HERE), "derivations")
FAST = [(L, t) for (L, t) in STORED_CASES if (t <= 2 and L <= 4) or (L == 1) or (L, t) == (2, 3)]
SLOW = [c for c in STORED_CASES if c not in FAST]


def _load(L, t):
    path = os.path.join(STORE, f"L{L}_t{t}.json")
    if not os.path.exists(path):
        pytest.fail(f"{path} is missing: run python derivations/regenerate.py")
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def _check(L, t):
    stored = _load(L, t)
    assert stored["schema"] == SCHEMA
    fresh = json.loads(json.dumps(stored_record(L, t)))
    stored.pop("versions")
    fresh.pop("versions")
    assert fresh == stored, f"derivations/L{L}_t{t}.json is stale: run python derivations/regenerate.py"


@pytest.mark.parametrize("L,t", FAST)
def test_stored_derivation_is_fresh(L, t):
    _check(L, t)


@pytest.mark.slow
@pytest.mark.parametrize("L,t", SLOW)
def test_stored_derivation_is_fresh_slow(L, t):
    _check(L, t)


def test_every_case_has_json_and_markdown_and_index():
    for L, t in STORED_CASES:
        assert os.path.exists(os.path.join(STORE, f"L{L}_t{t}.json"))
        assert os.path.exists(os.path.join(STORE, f"L{L}_t{t}.md"))
    with open(os.path.join(STORE, "index.md"), encoding="utf-8") as fh:
        index = fh.read()
    assert all(f"L{L}_t{t}.md" in index for L, t in STORED_CASES)


def test_stored_one_step_forms_are_theory_section_4():
    for L in range(1, 7):
        rec = _load(L, 1)
        half = "L**2*mu2/2".replace("L**2", str(L * L))
        expected_c2 = f"{L * L // 2}*mu2" if L * L % 2 == 0 else half
        assert rec["loss_coefficients"] == ["mu0/2", f"-{L}*mu1" if L > 1 else "-mu1", expected_c2 if L > 1 else "mu2/2"]


def test_stored_form_evaluates_like_the_engine():
    rec = _load(3, 2)
    mus = [Fraction(k + 2, 2 * k + 3) for k in range(5)]
    import sympy

    vals = {f"mu{j}": sympy.Rational(v.numerator, v.denominator) for j, v in enumerate(mus)}
    got = [sympy.sympify(s).subs(vals) for s in rec["loss_coefficients"]]
    ref = evaluate_closed_form(closed_form(3, 2), mus)
    assert [Fraction(int(g.p), int(g.q)) for g in got] == ref
