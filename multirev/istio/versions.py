"""Istio version numbers and the revision names derived from them."""

from __future__ import annotations

import re
from dataclasses import dataclass

from multirev.errors import UsageError

_VERSION = re.compile(r"^(\d+)\.(\d+)\.(\d+)(?:-((?:alpha|beta|rc)\.\d+))?$")
# A build of an untagged release-branch commit, named as upstream's Makefile names it: `<VERSION file>-dev`
# (istio@1.30.3:Makefile.core.mk). The local backend builds these where a tag's module is not served.
_DEV = re.compile(r"^(\d+)\.(\d+)-dev$")
DEV = "dev"


@dataclass(frozen=True, order=True)
class IstioVersion:
    major: int
    minor: int
    patch: int
    prerelease: str = ""

    @classmethod
    def parse(cls, text: str) -> IstioVersion:
        if dev := _DEV.match(text.strip().lstrip("v")):
            return cls(int(dev.group(1)), int(dev.group(2)), 0, DEV)
        match = _VERSION.match(text.strip().lstrip("v"))
        if not match:
            raise UsageError(f"'{text}' is not an Istio version: expected MAJOR.MINOR.PATCH such as 1.30.3 "
                             "(or MAJOR.MINOR-dev for a release-branch build)")
        major, minor, patch, pre = match.groups()
        return cls(int(major), int(minor), int(patch), pre or "")

    @classmethod
    def try_parse(cls, text: str) -> IstioVersion | None:
        """The version, or None for text that is not one (e.g. a label of a chart that sets none)."""
        try:
            return cls.parse(text)
        except UsageError:
            return None

    @property
    def minor_line(self) -> tuple[int, int]:
        return (self.major, self.minor)

    @property
    def revision(self) -> str:
        """The revision name the suite derives, e.g. 1.30.3 -> 1-30-3 (revisions allow no dots)."""
        return str(self).replace(".", "-")

    @property
    def is_dev(self) -> bool:
        return self.prerelease == DEV

    def __str__(self) -> str:
        if self.is_dev:
            return f"{self.major}.{self.minor}-{DEV}"
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
