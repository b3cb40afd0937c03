"""Did `istioctl analyze` find errors? (istioctl/pkg/analyze: error-level findings exit 79; warnings do not.)"""

from __future__ import annotations

from multirev.commands import Completed


def check_analyze(namespace: str, result: Completed) -> list[str]:
    errors = [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("Error")]
    if result.returncode == 0 and not errors:
        return []
    return [f"istioctl analyze --namespace {namespace} exited {result.returncode}: "
            + ("; ".join(errors) or result.stderr.strip()[-300:])]
