"""Refresh the README's picture, docs/status-page.png, from the status page's browser test.

``python -m devtools.screenshot`` runs tests/integration/test_status_page.py (the demo fleet in
the sandbox, a hostile probe output, a killed trader, headless Chromium) with the picture
pointed at docs/status-page.png. The test alone writes it to a temporary directory: no test
writes into the checkout. It waits for the machine's sandbox like any integration test.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PICTURE = REPO / "docs" / "status-page.png"
TEST = "tests/integration/test_status_page.py"


def main() -> int:
    """Run the browser test with its screenshot going to docs/status-page.png."""
    env = {**os.environ, "STATUS_PAGE_SCREENSHOT": str(PICTURE)}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", TEST]
    done = subprocess.run(cmd, cwd=REPO, env=env, check=False)
    if done.returncode == 0:
        print(f"refreshed {PICTURE.relative_to(REPO)}")
    else:
        print(f"the browser test failed (exit {done.returncode}): {PICTURE.name} may be stale")
    return done.returncode


if __name__ == "__main__":
    raise SystemExit(main())
