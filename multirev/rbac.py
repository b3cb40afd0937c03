"""The permissions of an `--installed` run (manifests/rbac/certify-installed.yaml), asked of the API server before
anything is created: a run under too narrow a Role is refused in one line naming what is missing, instead of failing
half-way on a 403; a role only one feature needs, when missing, skips that feature with the reason."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from multirev.paths import MANIFESTS

CERTIFY_INSTALLED = MANIFESTS / "rbac" / "certify-installed.yaml"
ONLY_FOR_FEATURE = "conformance.multirev.io/only-for-feature"
CHECKS_AT_ONCE = 8  # SelfSubjectAccessReviews in flight: ~100 of them take well under a second


@dataclass(frozen=True)
class Permission:
    verb: str
    group: str  # "" for the core group
    resource: str  # "pods", "pods/exec", or "*"

    def __str__(self) -> str:
        return f"{self.verb} {self.resource}" + (f" ({self.group})" if self.group else "")

    def review(self) -> dict:
        """The SelfSubjectAccessReview spec asking for it, cluster-wide (authorization.k8s.io/v1
        ResourceAttributes)."""
        resource, _, subresource = self.resource.partition("/")
        attributes = {"verb": self.verb, "group": self.group, "resource": resource}
        if subresource:
            attributes["subresource"] = subresource
        return {"resourceAttributes": attributes}


@dataclass
class Role:
    name: str
    permissions: list[Permission]
    only_for_feature: str | None = None


@dataclass
class Verdict:
    missing: dict[str, list[Permission]] = field(default_factory=dict)  # required role -> what it lacks
    withheld: dict[str, str] = field(default_factory=dict)  # feature -> why it is skipped

    def refusal(self, user: str, path: Path = CERTIFY_INSTALLED) -> str | None:
        if not self.missing:
            return None
        lacking = [f"{role}: {', '.join(map(str, perms))}" for role, perms in self.missing.items()]
        return (f"--installed: {user} may not do what the run needs ({'; '.join(lacking)}); apply "
                f"{_shown(path)} and bind its ClusterRoles to that account (docs/backends.md, \"Permissions\")")


def roles(path: Path = CERTIFY_INSTALLED) -> list[Role]:
    found = []
    for doc in yaml.safe_load_all(path.read_text()):
        if not doc:
            continue
        permissions = [Permission(verb, group, resource) for rule in doc.get("rules") or []
                       for group in rule.get("apiGroups") or [] for resource in rule.get("resources") or []
                       for verb in rule.get("verbs") or []]
        annotations = doc["metadata"].get("annotations") or {}
        found.append(Role(doc["metadata"]["name"], permissions, annotations.get(ONLY_FOR_FEATURE)))
    return found


def judge(allowed: Callable[[Permission], bool], of: Iterable[Role]) -> Verdict:
    """Ask for every permission of every role (a few at a time); a required role's gaps refuse the run, an optional
    one's withhold its feature."""
    of = list(of)
    asked = sorted({p for role in of for p in role.permissions}, key=str)
    with ThreadPoolExecutor(CHECKS_AT_ONCE) as pool:
        answers = dict(zip(asked, pool.map(allowed, asked), strict=True))
    verdict = Verdict()
    for role in of:
        lacking = [p for p in role.permissions if not answers[p]]
        if not lacking:
            continue
        if role.only_for_feature:
            verdict.withheld[role.only_for_feature] = (
                f"--installed: the run's account lacks ClusterRole {role.name} "
                f"({', '.join(map(str, lacking))}), which this feature alone needs ({_shown(CERTIFY_INSTALLED)})")
        else:
            verdict.missing[role.name] = lacking
    return verdict


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(MANIFESTS.parent))
    except ValueError:
        return str(path)
