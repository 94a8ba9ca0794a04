"""One module per CLI subcommand; see :mod:`polyloss.cli`."""
