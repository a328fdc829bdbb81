"""``python -m marquardt``: the command line (see ``marquardt.cli``)."""

from marquardt.cli import main

raise SystemExit(main())
