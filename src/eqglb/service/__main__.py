"""``python -m eqglb.service``: run the dispatch service (see eqglb.service.server)."""

from eqglb.service.server import main

raise SystemExit(main())
