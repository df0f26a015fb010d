"""``python -m eqglb``: the command line (see eqglb.cli)."""

from eqglb.cli import main

raise SystemExit(main())
