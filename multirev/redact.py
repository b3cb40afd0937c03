"""Keep credentials out of everything the suite writes."""

from __future__ import annotations

import re

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
