"""Training horizons that grow with the width: ``T = T(n)`` for ``polyloss sample --steps``.

A :class:`StepsRule` is parsed from what ``--steps`` accepts:

* an integer, ``2``: a fixed horizon (today's runs, bit for bit: run.json keeps ``"steps": 2``);
* an expression in the width ``n``, ``ceil(2*n**0.15)``: only the name ``n``, numeric literals,
  ``+ - * / ** // %``, parentheses and the functions ceil, floor, round, log (natural, or
  ``log(x, base)``), log2, sqrt, min, max. It is evaluated exactly in rationals wherever the value is
  rational (``n/32``, ``64**(1/2)``, ``sqrt(n)`` of a square, ``log2`` of a power of two), in float64
  otherwise; its value must be an integer (wrap it in ceil/floor/round) in [1, :data:`MAX_STEPS`] at
  every requested width. An expression without ``n`` is a fixed horizon (``1+1`` is ``2``);
* explicit ``WIDTH:T`` pairs, ``64:1,128:2,256:2``: they must cover every requested width and may
  list more (a run resumed with more widths keeps its rule, so list the widths you may add).

A run with a growing horizon (any rule that is not fixed) stores in run.json ``"steps": null``,
``"steps_rule": <canonical spec>`` and ``"degree"`` as the *cap* on the kept degree: width n keeps
``min(degree, full degree at T(n))`` coefficients (:func:`degree_for`); every record carries
``"steps": T(n)``. Readers that assume one T per run refuse such a run in one line
(:func:`polyloss.sampling.load_run` does unless called with ``horizons=True``); :func:`split_by_steps`
cuts it into ordinary fixed-T runs, one per distinct T, and :func:`limits_by_steps` derives the
exact limit once per T.
"""

from __future__ import annotations

import ast
import math
import numbers
import re
from dataclasses import dataclass
from fractions import Fraction

from polyloss.errors import RunError, SpecError, short_repr

__all__ = ["StepsRule", "MAX_STEPS", "STEPS_VALID", "check_horizons", "degree_for", "rule_of_config", "steps_by_width",
           "split_by_steps", "limits_by_steps"]

#: The longest horizon a rule may give (derive's MAX_STEPS: the limit must be derivable per T).
MAX_STEPS = 12
STEPS_VALID = (f"an integer >= 1, an expression in the width n such as 'ceil(2*n**0.15)' (n, numbers, + - * / ** // %, "
               f"ceil, floor, round, log, log2, sqrt, min, max; an integer in [1, {MAX_STEPS}] at every width) "
               f"or WIDTH:T pairs such as '64:1,128:2' covering every width")
_MAX_TEXT = 200
_MAX_NODES = 100
_MAX_BITS = 4096  # an exact intermediate larger than this is refused (n**n**n)
_PAIRS = re.compile(r"^\s*\d+\s*:\s*\d+\s*(,\s*\d+\s*:\s*\d+\s*)*$")
_FUNCS = {"ceil": (1, 1), "floor": (1, 1), "round": (1, 1), "log": (1, 2), "log2": (1, 1), "sqrt": (1, 1),
          "min": (1, 16), "max": (1, 16)}
_BINOPS = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow, ast.FloorDiv, ast.Mod)


def _bad(value, why: str = "") -> SpecError:
    return SpecError(f"`steps`={short_repr(value)} is invalid: " + (f"{why}; " if why else "") + f"must be {STEPS_VALID}")


class _EvalError(Exception):
    pass


# ------------------------------------------------------------------------------------------ evaluation
def _check_size(x):
    if isinstance(x, Fraction) and max(x.numerator.bit_length(), x.denominator.bit_length()) > _MAX_BITS:
        raise _EvalError("an intermediate value is too large")
    if isinstance(x, float) and not math.isfinite(x):
        raise _EvalError("an intermediate value is not finite")
    return x


def _iroot(k: int, c: int):
    """The exact integer c-th root of k >= 0, or None."""
    if k < 2:
        return k
    r = round(k ** (1.0 / c)) if k.bit_length() < 1000 else None
    if r is None:
        return None
    for cand in (r - 1, r, r + 1):
        if cand >= 0 and cand ** c == k:
            return cand
    return None


def _pow(a, b):
    if isinstance(a, Fraction) and isinstance(b, Fraction):
        if b.denominator == 1:
            e = b.numerator
            if abs(e) > 4096:
                raise _EvalError("an exponent is too large")
            if a == 0 and e < 0:
                raise _EvalError("division by zero")
            if a.numerator.bit_length() * abs(e) > 4 * _MAX_BITS or a.denominator.bit_length() * abs(e) > 4 * _MAX_BITS:
                raise _EvalError("an intermediate value is too large")
            return a ** e
        if a >= 0 and b.denominator <= 64:  # an exact rational root when there is one
            p, q = _iroot(a.numerator, b.denominator), _iroot(a.denominator, b.denominator)
            if p is not None and q is not None:
                return _pow(Fraction(p, q), Fraction(b.numerator))
    fa, fb = float(a), float(b)
    if fa < 0 and not fb.is_integer():
        raise _EvalError("a negative number to a fractional power")
    if fa == 0 and fb < 0:
        raise _EvalError("division by zero")
    try:
        return fa ** fb
    except OverflowError:
        raise _EvalError("an intermediate value is too large") from None


def _log(x, base=None):
    if x <= 0 or (base is not None and (base <= 0 or base == 1)):
        raise _EvalError("the logarithm of a number <= 0 (or to a base <= 0 or 1)")
    if base is not None:
        if isinstance(x, Fraction) and isinstance(base, Fraction) and x.denominator == 1 and base.denominator == 1:
            k, b, e = x.numerator, base.numerator, 0  # exact when x is a power of an integer base
            while k % b == 0 and k > 1:
                k //= b
                e += 1
            if k == 1:
                return Fraction(e)
        return _ln(x) / _ln(base)
    return _ln(x)


def _ln(x) -> float:
    if isinstance(x, Fraction):
        return math.log(x.numerator) - math.log(x.denominator)
    return math.log(x)


def _call(name: str, args):
    if name in ("min", "max"):
        return (min if name == "min" else max)(args)
    (x,) = args[:1]
    if name in ("ceil", "floor", "round"):
        f = {"ceil": math.ceil, "floor": math.floor, "round": round}[name]
        return Fraction(f(x))
    if name == "sqrt":
        if x < 0:
            raise _EvalError("the square root of a negative number")
        return _pow(x, Fraction(1, 2)) if isinstance(x, Fraction) else math.sqrt(x)
    if name == "log2":
        return _log(x, Fraction(2))
    if name == "log":
        return _log(x, args[1] if len(args) == 2 else None)
    raise _EvalError(f"unknown function {name}")  # pragma: no cover - refused at parse


def _eval(node, n: int):
    if isinstance(node, ast.Expression):
        return _eval(node.body, n)
    if isinstance(node, ast.Constant):
        return Fraction(node.value) if isinstance(node.value, int) else Fraction(repr(node.value))
    if isinstance(node, ast.Name):
        return Fraction(n)
    if isinstance(node, ast.UnaryOp):
        v = _eval(node.operand, n)
        return -v if isinstance(node.op, ast.USub) else v
    if isinstance(node, ast.BinOp):
        a, b = _eval(node.left, n), _eval(node.right, n)
        op = node.op
        if isinstance(op, ast.Pow):
            return _check_size(_pow(a, b))
        if isinstance(op, (ast.Div, ast.FloorDiv, ast.Mod)) and b == 0:
            raise _EvalError("division by zero")
        if isinstance(op, ast.Add):
            r = a + b
        elif isinstance(op, ast.Sub):
            r = a - b
        elif isinstance(op, ast.Mult):
            r = a * b
        elif isinstance(op, ast.Div):
            r = a / b
        elif isinstance(op, ast.FloorDiv):
            r = Fraction(a // b)
        else:
            r = a % b
        return _check_size(r)
    if isinstance(node, ast.Call):
        return _check_size(_call(node.func.id, [_eval(a, n) for a in node.args]))
    raise _EvalError("unsupported syntax")  # pragma: no cover - refused at parse


def _validate_tree(tree, text) -> bool:
    """Refuse everything but the allowed grammar; return whether the name n occurs."""
    nodes = list(ast.walk(tree))
    if len(nodes) > _MAX_NODES:
        raise _bad(text, "the expression is too long")
    uses_n = False
    for node in nodes:
        if isinstance(node, (ast.Expression, ast.Load)) or isinstance(node, _BINOPS) or isinstance(node, (ast.UAdd, ast.USub)):
            continue
        if isinstance(node, ast.BinOp) and isinstance(node.op, _BINOPS):
            continue
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.UAdd, ast.USub)):
            continue
        if isinstance(node, ast.Constant) and type(node.value) in (int, float) and math.isfinite(node.value):
            continue
        if isinstance(node, ast.Name):
            if node.id == "n":
                uses_n = True
                continue
            if node.id in _FUNCS:
                continue  # checked as a callee below
            raise _bad(text, f"unknown name {node.id!r} (the width is n)")
        if isinstance(node, ast.Call):
            f = node.func
            if not (isinstance(f, ast.Name) and f.id in _FUNCS) or node.keywords:
                raise _bad(text, "only ceil, floor, round, log, log2, sqrt, min and max may be called, without keywords")
            lo, hi = _FUNCS[f.id]
            if not lo <= len(node.args) <= hi or any(isinstance(a, ast.Starred) for a in node.args):
                raise _bad(text, f"{f.id} takes {lo}" + ("" if lo == hi else f" to {hi}") + " arguments")
            continue
        raise _bad(text, f"{type(node).__name__} is not allowed")
    for node in nodes:  # a function name used as a value: 'ceil + 1'
        if isinstance(node, ast.Name) and node.id in _FUNCS:
            if not any(isinstance(c, ast.Call) and c.func is node for c in nodes):
                raise _bad(text, f"{node.id} must be called")
    return uses_n


def _as_int(v):
    """The integer value of v, or None when v is not an integer."""
    if isinstance(v, Fraction):
        return v.numerator if v.denominator == 1 else None
    return int(v) if math.isfinite(v) and float(v).is_integer() else None


# ------------------------------------------------------------------------------------------ the rule
@dataclass(frozen=True, eq=False)
class StepsRule:
    """A validated training horizon T(n): fixed, an expression in n, or WIDTH:T pairs (see the module).

    Example:
      >>> r = StepsRule.parse("ceil(log2(n)/3)")
      >>> r.spec, [r.steps_for(n) for n in (64, 128, 4096)]
      ('ceil(log2(n) / 3)', [2, 3, 4])
      >>> StepsRule.parse(2).is_fixed, StepsRule.parse("1+1").spec
      (True, '2')
    """

    kind: str  # 'fixed' | 'expression' | 'pairs'
    spec: str
    _fixed: int | None = None
    _tree: object = None
    _pairs: tuple = ()

    # ---- construction
    @classmethod
    def parse(cls, value) -> "StepsRule":
        if isinstance(value, StepsRule):
            return value
        if isinstance(value, numbers.Integral) and not isinstance(value, bool):
            if value < 1:
                raise _bad(value, "a fixed number of steps must be >= 1")
            return cls("fixed", str(int(value)), int(value))
        if not isinstance(value, str):
            raise _bad(value)
        text = value.strip()
        if not text or len(text) > _MAX_TEXT or not text.isascii():
            raise _bad(value, f"give at most {_MAX_TEXT} ASCII characters")
        if text.isdigit():
            return cls.parse(int(text))
        if ":" in text:
            if not _PAIRS.match(text):
                raise _bad(value, "pairs are WIDTH:T separated by commas")
            pairs = {}
            for item in text.split(","):
                w, t = (int(s) for s in item.split(":"))
                if w < 1 or w in pairs:
                    raise _bad(value, f"width {w} is " + ("listed twice" if w in pairs else "not >= 1"))
                if not 1 <= t <= MAX_STEPS:
                    raise _bad(value, f"width {w} has T = {t}, outside [1, {MAX_STEPS}]")
                pairs[w] = t
            items = tuple(sorted(pairs.items()))
            return cls("pairs", ",".join(f"{w}:{t}" for w, t in items), None, None, items)
        try:
            tree = ast.parse(text, mode="eval")
        except (SyntaxError, ValueError):
            raise _bad(value, "not a valid expression") from None
        uses_n = _validate_tree(tree, value)
        spec = ast.unparse(tree)
        if not uses_n:  # a constant: a fixed horizon
            t = _as_int(cls._evaluate(tree, 1, value))
            if t is None or t < 1:
                raise _bad(value, "a constant expression must be an integer >= 1")
            return cls.parse(t)
        return cls("expression", spec, None, tree)

    @staticmethod
    def _evaluate(tree, n: int, text):
        try:
            return _eval(tree, n)
        except (_EvalError, ZeroDivisionError, OverflowError, ValueError) as exc:
            raise _bad(text, f"at width {n}: {exc}") from None

    @classmethod
    def from_dict(cls, doc) -> "StepsRule":
        if not isinstance(doc, dict) or "spec" not in doc:
            raise _bad(doc, "a steps rule is stored as {kind, spec}")
        rule = cls.parse(doc["spec"])
        if doc.get("kind", rule.kind) != rule.kind:
            raise _bad(doc, f"its spec is a {rule.kind} rule, not {doc.get('kind')!r}")
        return rule

    def to_dict(self) -> dict:
        return {"kind": self.kind, "spec": self.spec}

    # ---- queries
    @property
    def is_fixed(self) -> bool:
        return self.kind == "fixed"

    @property
    def fixed(self) -> int:
        """T of a fixed rule (a SpecError for a growing one)."""
        if not self.is_fixed:
            raise SpecError(f"`steps`={self.spec!r} gives each width its own number of steps, not one T")
        return self._fixed

    def steps_for(self, n) -> int:
        """T at width n: an integer (>= 1; <= MAX_STEPS unless fixed), or a one-line SpecError."""
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
            raise SpecError(f"`width`={short_repr(n)} is invalid: must be an integer >= 1")
        n = int(n)
        if self.kind == "fixed":
            return self._fixed
        if self.kind == "pairs":
            for w, t in self._pairs:
                if w == n:
                    return t
            raise SpecError(f"`steps`={self.spec!r} is invalid for width {n}: WIDTH:T pairs must cover every "
                            f"requested width (add {n}:T)")
        v = self._evaluate(self._tree, n, self.spec)
        t = _as_int(v)
        if t is None or not 1 <= t <= MAX_STEPS:
            shown = f"{float(v):.6g}" if t is None else str(t)
            hint = " (wrap it in ceil, floor or round)" if t is None else f" ({MAX_STEPS} is derive's longest horizon)"
            raise SpecError(f"`steps`={self.spec!r} is invalid at width {n}: it gives {shown}, must give an integer "
                            f"in [1, {MAX_STEPS}]{hint}")
        return t

    def by_width(self, widths) -> dict:
        """{n: T(n)} for every width (validating each)."""
        return {int(n): self.steps_for(n) for n in widths}

    def __eq__(self, other) -> bool:
        return isinstance(other, StepsRule) and (self.kind, self.spec) == (other.kind, other.spec)

    def __hash__(self) -> int:
        return hash((self.kind, self.spec))

    def __repr__(self) -> str:
        return f"StepsRule({self.spec!r})"

    def __str__(self) -> str:
        return self.spec


# ------------------------------------------------------------------------------------------ run helpers
def rule_of_config(config: dict) -> StepsRule:
    """The horizon rule of a sample run's config (fixed when it has no ``steps_rule``)."""
    if config.get("steps_rule") is not None:
        return StepsRule.parse(config["steps_rule"])
    return StepsRule.parse(config["steps"])


def degree_for(config: dict, steps: int) -> int:
    """The number of kept loss coefficients minus one at horizon ``steps`` of a sample run: run.json's
    ``degree`` for a fixed run; for a growing one its cap, min(degree, full degree at that T)."""
    if config.get("steps_rule") is None:
        return int(config["degree"])
    from polyloss.poly import as_recipe
    from polyloss.recipe import recipe_loss_degree

    return min(int(config["degree"]), recipe_loss_degree(int(config["depth"]), int(steps), as_recipe(config.get("recipe"))))


def steps_by_width(run) -> dict:
    """{width: T} of a sample run (a :class:`polyloss.sampling.SampleRun`)."""
    return rule_of_config(run.config).by_width(run.config["widths"])


def split_by_steps(run) -> dict:
    """{T: SampleRun}: a (growing-horizon) run cut into ordinary fixed-T runs, one per distinct T, each
    with the widths of that T, ``config["steps"] = T``, its degree, and no ``steps_rule`` (the records'
    ``steps`` field is dropped), so code written for one T (compare, report) takes each unchanged.
    A fixed run gives {T: run}."""
    from polyloss.sampling import SampleRun

    cfg = run.config
    if cfg.get("steps_rule") is None:
        return {int(cfg["steps"]): run}
    by_w = steps_by_width(run)
    out = {}
    for T in sorted(set(by_w.values())):
        widths = [n for n in cfg["widths"] if by_w[n] == T]
        sub = {k: v for k, v in cfg.items() if k != "steps_rule"}
        sub.update(steps=T, widths=widths, degree=degree_for(cfg, T))
        recs = []
        for r in run.records:
            if r["width"] in widths:
                if r.get("steps") != T:
                    raise RunError(f"{run.path}: the record of width {r['width']}, sample {r['sample']} has steps="
                                   f"{r.get('steps')!r}, the rule {cfg['steps_rule']!r} gives {T}; the run is corrupt")
                recs.append({k: v for k, v in r.items() if k != "steps"})
        out[T] = SampleRun(run.path, sub, tuple(recs))
    return out


def limits_by_steps(run, derive_fn=None, cache: dict | None = None) -> dict:
    """{T: limit} for every distinct horizon of ``run``: ``derive_fn(sub_run)`` (default
    :func:`polyloss.compare.limit_for_run`) is called once per T on the fixed-T part of the run
    (:func:`split_by_steps`); ``cache`` (a dict) keeps limits across calls and runs, keyed by T and
    everything of run.json the limit depends on (depth, param, recipe, data, window)."""
    import json

    if derive_fn is None:
        from polyloss.compare import limit_for_run as derive_fn
    cache = {} if cache is None else cache
    cfg = run.config
    what = json.dumps({k: cfg.get(k) for k in ("depth", "param", "recipe", "data", "window")}, sort_keys=True)
    out = {}
    for T, sub in split_by_steps(run).items():
        if (T, what) not in cache:
            cache[(T, what)] = derive_fn(sub)
        out[T] = cache[(T, what)]
    return out


def check_horizons(steps, widths, recipe=None) -> dict:
    """Validate a horizon (int, text or StepsRule) at every width, and the training recipe's schedule
    at every distinct T (``recipe.check_steps``); return {width: T}. One-line SpecError otherwise."""
    by_w = StepsRule.parse(steps).by_width(widths)
    if recipe is not None:
        for T in sorted(set(by_w.values())):
            recipe.check_steps(T)
    return by_w
