"""Istio version numbers and the revision names derived from them."""

from __future__ import annotations

import re
from dataclasses import dataclass

from multirev.errors import UsageError

_VERSION = re.compile(r"^(\d+)\.(\d+)\.(\d+)(?:-((?:alpha|beta|rc)\.\d+))?$")


@dataclass(frozen=True, order=True)
class IstioVersion:
    major: int
    minor: int
    patch: int
    prerelease: str = ""

    @classmethod
    def parse(cls, text: str) -> IstioVersion:
        match = _VERSION.match(text.strip().lstrip("v"))
        if not match:
            raise UsageError(f"'{text}' is not an Istio version: expected MAJOR.MINOR.PATCH such as 1.30.3")
        major, minor, patch, pre = match.groups()
        return cls(int(major), int(minor), int(patch), pre or "")

    @property
    def minor_line(self) -> tuple[int, int]:
        return (self.major, self.minor)

    @property
    def revision(self) -> str:
        """The revision name the suite derives, e.g. 1.30.3 -> 1-30-3 (revisions allow no dots)."""
        return str(self).replace(".", "-")

    def __str__(self) -> str:
        base = f"{self.major}.{self.minor}.{self.patch}"
        return f"{base}-{self.prerelease}" if self.prerelease else base


@dataclass(frozen=True, order=True)
class KubeVersion:
    """A Kubernetes minor version, e.g. 1.33."""

    major: int
    minor: int

    @classmethod
    def parse(cls, text: str) -> KubeVersion:
        match = re.match(r"^v?(\d+)\.(\d+)", text.strip())
        if not match:
            raise UsageError(f"'{text}' is not a Kubernetes version: expected e.g. 1.33 or v1.33.1")
        return cls(int(match.group(1)), int(match.group(2)))

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"
