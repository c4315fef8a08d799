"""Operating it: `supervisor doctor`, `backup` and `restore` (see docs/OPERATIONS.md)."""
