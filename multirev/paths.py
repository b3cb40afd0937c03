"""Where the project's own files are."""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
MANIFESTS = PROJECT_ROOT / "manifests"
DEFAULT_REPORTS = PROJECT_ROOT / "reports"
