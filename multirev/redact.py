"""Keep credentials out of everything the suite writes."""

from __future__ import annotations

import re
from typing import Any

_PATTERNS = [
    # PEM blocks (certificates, keys)
    (re.compile(r"-----BEGIN [A-Z ]+-----.*?-----END [A-Z ]+-----", re.S), "<redacted PEM>"),
    # kubeconfig / secret style fields
    (re.compile(r'("?(?:token|password|client-key-data|client-certificate-data|'
                r'certificate-authority-data|id-token|refresh-token)"?\s*[:=]\s*)"?[^\s",]+"?', re.I),
     r"\1<redacted>"),
    (re.compile(r"(Authorization:\s*Bearer\s+)\S+", re.I), r"\1<redacted>"),
    (re.compile(r"(--token=)\S+"), r"\1<redacted>"),
]


def redact_text(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


SECRET_FLAGS = ("--token", "--password", "--client-key", "--client-certificate")


def redact_argv(argv: list[str]) -> list[str]:
    """Redact `--token=X` and also the value after a separate `--token`."""
    out = []
    hide_next = False
    for arg in argv:
        out.append("<redacted>" if hide_next else redact_text(arg))
        hide_next = arg in SECRET_FLAGS
    return out


_SENSITIVE = re.compile(r"(token|passw(or)?d|secret|credential|private[-_]?key|api[-_]?key|client-key)", re.I)
REDACTED = "<redacted>"


def scrub(value: Any, key: str = "") -> Any:
    """Redact a Kubernetes object structurally: Secret data, values under sensitive-looking keys, env
    entries with sensitive names; then every string by `redact_text`."""
    if isinstance(value, dict):
        if value.get("kind") == "Secret":
            value = {**value, **{k: dict.fromkeys(value[k], REDACTED) for k in ("data", "stringData")
                                 if isinstance(value.get(k), dict)}}
        if isinstance(value.get("name"), str) and "value" in value and _SENSITIVE.search(value["name"]):
            value = {**value, "value": REDACTED}
        return {k: (REDACTED if _SENSITIVE.search(k) and isinstance(v, str) else scrub(v, k))
                for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v, key) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    return value
