"""The Python API, one function per CLI verb, each returning a typed result.

>>> from polyloss import api
>>> api.sample, api.derive, api.sweep, api.compare, api.report, api.verify   # doctest: +SKIP

(The package's submodules carry the same names — ``polyloss.compare`` is the module — so the
verbs are gathered here.)
"""

from polyloss.checks import run_claims as verify
from polyloss.compare import compare
from polyloss.derive import derive
from polyloss.poly import exact_polynomial as poly
from polyloss.report import report
from polyloss.sampling import run_sample as sample
from polyloss.sweep import run_sweep as sweep

__all__ = ["poly", "sample", "derive", "sweep", "compare", "report", "verify"]
