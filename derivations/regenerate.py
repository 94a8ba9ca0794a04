"""Regenerate every stored derivation in this folder (JSON + Markdown + index.md).

Usage:
  python derivations/regenerate.py            # all cases in polyloss.derive.STORED_CASES
  python derivations/regenerate.py 3,2 4,3    # only these (L,t) pairs (index.md lists only them)
  python derivations/regenerate.py --recipes  # only the recipe closed forms in recipes/
"""

from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from polyloss.derive import STORED_CASES, write_derivations, write_recipe_derivations  # noqa: E402


def main(argv: list[str]) -> int:
    if argv == ["--recipes"]:
        write_recipe_derivations(HERE, progress=print)
        return 0
    cases = STORED_CASES
    if argv:
        cases = tuple(tuple(int(v) for v in a.split(",")) for a in argv)
    write_derivations(HERE, cases, progress=print)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
