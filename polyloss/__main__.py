"""``python -m polyloss``: the same command line as the ``polyloss`` script."""

from polyloss.cli import main

raise SystemExit(main())
