"""Find credentials that reached files people and CI read (reports/ is uploaded by the nightly workflow)."""

from __future__ import annotations

import re
from pathlib import Path

# What a leaked kubeconfig, key or token looks like once written; redacted text never matches.
CREDENTIAL = re.compile(
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----"
    r"|(?:client-key-data|client-certificate-data|token)\"?\s*[:=]\s*\"?(?!<redacted>)[A-Za-z0-9+/=._-]{16,}"
    r"|Authorization:\s*Bearer\s+(?!<redacted>)\S+", re.I)


def credential_leaks(root: Path) -> list[tuple[str, str]]:
    """(file relative to root, the first matching text) for every file under root holding a credential."""
    leaks = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        found = CREDENTIAL.search(path.read_text(errors="replace"))
        if found:
            leaks.append((str(path.relative_to(root)), found.group(0)[:60]))
    return leaks
