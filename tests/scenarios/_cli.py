"""The real CLI run in-process, as the scenario tests drive it: what the admin would see."""
from __future__ import annotations

import contextlib
import io

from bot.cli import main


def run_cli(*argv: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `crm-pulse argv...`."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(list(argv))
    return rc, out.getvalue(), err.getvalue()
