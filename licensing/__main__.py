"""`python -m licensing` runs the admin CLI."""

from licensing.cli.main import main

raise SystemExit(main())
