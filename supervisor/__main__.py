"""`python -m supervisor` is the same as the `supervisor` command."""

from supervisor.cli import main

raise SystemExit(main())
