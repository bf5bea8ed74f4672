"""The API fuzzed longer than CI does: Schemathesis on the app's own OpenAPI schema with a valid
owner key, on SQLite and PostgreSQL (no 5xx; every status, media type and body as documented).

    python -m bench.fuzz [--examples 200]

CI runs the same test (``tests/service/api/test_fuzz.py``) with 6 examples per operation.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import typer

REPO = Path(__file__).resolve().parents[1]
app = typer.Typer(add_completion=False, help=__doc__.split("\n\n")[0])


@app.command()
def main(examples: int = typer.Option(200, help="Generated cases per operation.")) -> None:
    """Run the fuzz test with ``examples`` cases per operation; exits with pytest's status."""
    env = os.environ | {"TASKREC_FUZZ_EXAMPLES": str(examples), "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "pytest", "-q", "tests/service/api/test_fuzz.py"]
    raise typer.Exit(subprocess.run(command, cwd=REPO, env=env).returncode)


if __name__ == "__main__":
    app()
