"""`python -m licensing` runs the admin CLI."""

from licensing.cli import main

raise SystemExit(main())
