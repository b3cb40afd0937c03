"""Where the project's own files are."""

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
MANIFESTS = PROJECT_ROOT / "manifests"
DEFAULT_REPORTS = PROJECT_ROOT / "reports"


def user_path(text: str) -> Path:
    """A path the user passed: a relative one means the folder they typed it in (`./run` records it in
    MULTIREV_CALLER_DIR before it changes into the repository; plain pytest runs there already)."""
    path = Path(text).expanduser()
    return path if path.is_absolute() else Path(os.environ.get("MULTIREV_CALLER_DIR") or os.getcwd()) / path
