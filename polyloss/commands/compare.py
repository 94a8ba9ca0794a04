"""``polyloss compare``: a muP sample run against the exact infinite-width limit."""

from __future__ import annotations

import argparse
import sys

from polyloss.commands._common import positive_int

EPILOG = """example:
  polyloss sample --depth 2 --widths 64,256,1024 --samples 32 --steps 1 --d 10 --m 50 --out runs/L2
  polyloss compare runs/L2                      # derives the exact limit on the run's own data
  polyloss data --from-run runs/L2 --out L2-data.npz     # the run's own data set
  polyloss derive --depth 2 --steps 1 --data L2-data.npz --format json --output lim.json
  polyloss compare runs/L2 --derivation lim.json --json > cmp.json

  For each width, each loss coefficient c_k and eta_n: mean +- s.e. over seeds, the exact limit,
  z-score, relative RMS deviation and a verdict at --level, Bonferroni-corrected over the table.
  Then the transfer gaps of every network (a = loss gap, b = |eta_n - eta_inf|, c = transfer penalty,
  c/a) per width, their log-log rates with bootstrap CIs, and the fast-transfer verdict (c = o(a)).
"""


def _level(text):
    try:
        v = float(text)
    except ValueError:
        v = -1.0
    if not 0 < v < 1:
        raise argparse.ArgumentTypeError(f"`level`={text!r} is invalid: must be a number in (0, 1)")
    return v


def register(sub) -> None:
    p = sub.add_parser("compare", help="sampled coefficients and eta_n vs the exact limit",
                       description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", metavar="RUN_DIR", help="a directory written by `polyloss sample` (muP)")
    p.add_argument("--derivation", default="auto", metavar="FILE|auto",
                   help="polyloss.derivation/1 JSON evaluated on the run's data, or 'auto' to derive it now (default)")
    p.add_argument("--level", type=_level, default=0.05, help="family-wise test level (default 0.05)")
    p.add_argument("--coeffs", type=positive_int("coeffs", 1, 10_000), default=4, help="compare c_0..c_{COEFFS-1} (default 4)")
    p.add_argument("--json", action="store_true", help="print the polyloss.compare/2 JSON document")
    p.set_defaults(func=run)


def run(args) -> int:
    from polyloss.compare import compare
    from polyloss.errors import SpecError

    if args.coeffs < 1:
        raise SpecError(f"`coeffs`={args.coeffs} is invalid: must be an integer >= 1")
    cmp_ = compare(args.run, args.derivation, level=args.level, n_coeffs=args.coeffs)
    if args.json:
        from polyloss._jsonsafe import dump

        dump(cmp_.to_json(), sys.stdout, indent=1)  # strict JSON: an undefined s.e. is null
        sys.stdout.write("\n")
        return 0
    lim = cmp_.limit
    print(f"run {args.run} vs exact limit ({lim.source}); window (0, {lim.window:.6g}], "
          f"eta_inf in window = {lim.eta_window_min:.12g}")
    print(f"recipe: {cmp_.recipe}")
    if cmp_.horizons is not None:
        print(f"growing horizon (steps rule {cmp_.steps_rule}): each width against the exact limit at its own T")
        for T, h in cmp_.horizons.items():
            print(f"  T = {T}: widths {', '.join(map(str, h['widths']))}; eta_inf in window = "
                  f"{h['limit'].eta_window_min:.12g}")
    print(f"level {cmp_.level} family-wise, Bonferroni over {cmp_.n_comparisons}: per-test {cmp_.level / cmp_.n_comparisons:.2g}")
    print(cmp_.basin_note())
    print(f"{'width':>7} {'quantity':>8} {'mean':>14} {'s.e.':>9} {'limit':>14} {'z':>7} {'rel RMS':>9}  verdict")
    for r in cmp_.rows:
        se, z = (f"{r.se:>9.2g}", f"{r.z:>7.2f}") if r.tested else (f"{'–':>9}", f"{'–':>7}")
        share = f" (share {r.share:.0%})" if r.share is not None else ""
        print(f"{r.width:>7} {r.quantity:>8} {r.mean:>14.7g} {se} {r.limit:>14.7g} {z} {r.rel_rms:>9.3g}  {r.verdict}{share}")
    print("all consistent" if cmp_.consistent else "some comparisons are inconsistent at this level")
    if cmp_.gaps is not None:
        from polyloss.gaps import gaps_text

        print()
        print("\n".join(gaps_text(cmp_.gaps)))
    return 0
