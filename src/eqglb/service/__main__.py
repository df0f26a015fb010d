"""``python -m eqglb.service``: run the dispatch service (see eqglb.cli.serve)."""

from eqglb.cli.serve import main

raise SystemExit(main())
