"""Profiles: which two Istio versions to run, in which namespaces, under which revisions and tags."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from multirev.compat import common_kubernetes
from multirev.errors import UsageError
from multirev.istio import facts
from multirev.istio.capabilities import assume_facts_of, check_known
from multirev.istio.facts import IMAGE_VARIANTS
from multirev.istio.versions import IstioVersion

ROLES = ("stable", "canary")
LAYOUTS = ("separate", "shared")
# How the run installs its revisions (multirev/istio/installer.py).
INSTALLERS = ("istioctl", "helm")
# Both revisions live here in the shared layout (Istio's default namespace).
SHARED_NAMESPACE = "istio-system"
# Kubernetes DNS-1123 label: namespaces, revisions and tags must be one.
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


@dataclass(frozen=True)
class ControlPlane:
    role: str
    version: IstioVersion
    namespace: str
    revision: str
    tag: str
    app_namespaces: tuple[str, ...]
    # --installed: what the cluster's own revision is (multirev/istio/installed.py), None where the run installs it.
    # The labels that put a namespace in its view ((key, value) pairs; empty: it watches every namespace), and its
    # ingress and egress gateway Services as (namespace, name) (None: it has none the suite can use).
    discovery: tuple[tuple[str, str], ...] | None = None
    ingress: tuple[str, str] | None = None
    egress: tuple[str, str] | None = None
    # --installed, for the report: every tag found for it, and the mesh-config settings the suite depends on.
    found_tags: tuple[str, ...] = ()
    mesh_settings: tuple[tuple[str, str], ...] = ()
    # The proxy and istiod image variant the install asks for (values.global.variant: "" for the default images,
    # `distroless` or `debug`; facts.IMAGE_VARIANTS).
    variant: str = ""


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    layout: str
    stable: ControlPlane
    canary: ControlPlane
    assumed_facts_of: str | None = None  # a profile naming an unreleased minor says whose facts it borrows
    installer: str = "istioctl"
    # --installed: the cluster's revisions the run certifies ((role, revision) pairs); None where it installs its own
    installed: tuple[tuple[str, str], ...] | None = None

    @property
    def certifies_installed(self) -> bool:
        return self.installed is not None

    @property
    def planes(self) -> tuple[ControlPlane, ControlPlane]:
        return (self.stable, self.canary)

    def plane(self, role: str) -> ControlPlane:
        return self.stable if role == "stable" else self.canary


def builtin_profiles() -> list[str]:
    folder = resources.files("multirev") / "profiles"
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_profile(
    name: str = "current",
    *,
    path: Path | None = None,
    layout: str = "separate",
    stable_version: str | None = None,
    canary_version: str | None = None,
    installer: str | None = None,
    installed: str | None = None,
    variant: str | None = None,
) -> Profile:
    """Load a built-in profile or a user's file, apply overrides, and validate it before use."""
    if layout not in LAYOUTS:
        raise UsageError(f"--layout must be one of {', '.join(LAYOUTS)}, not '{layout}'")
    data = _read(name, path)
    source = str(path) if path else f"profile '{name}'"
    chosen_installer = str(installer or data.get("installer") or "istioctl")
    if chosen_installer not in INSTALLERS:
        where = "--installer" if installer else f"{source}: installer"
        raise UsageError(f"{where} must be one of {', '.join(INSTALLERS)}, not '{chosen_installer}'")
    named = installed or _installed_in(data.get("installed"), source)
    if named and installer:
        raise UsageError("--installed certifies revisions that are already installed; --installer does not apply")
    assumed = data.get("assume_facts_of")
    if assumed is not None:
        assume_facts_of(str(assumed))
    planes = {
        role: _plane(role, data.get(role), source, {"stable": stable_version, "canary": canary_version}[role])
        for role in ROLES
    }
    if layout == "shared":
        planes = {role: replace(p, namespace=SHARED_NAMESPACE) for role, p in planes.items()}
    chosen_variant = str(variant if variant is not None else data.get("variant") or "")
    if chosen_variant not in ("", *IMAGE_VARIANTS):
        where = "--variant" if variant is not None else f"{source}: variant"
        raise UsageError(f"{where} must be one of {', '.join(IMAGE_VARIANTS)} (or empty for the default images), "
                         f"not '{chosen_variant}'")
    planes = {role: replace(p, variant=chosen_variant) for role, p in planes.items()}
    profile = Profile(
        name=str(data.get("name", name)),
        description=str(data.get("description", "")),
        layout=layout,
        stable=planes["stable"],
        canary=planes["canary"],
        assumed_facts_of=str(assumed) if assumed is not None else None,
        installer=chosen_installer,
        installed=tuple(sorted(parse_installed(named).items())) if named else None,
    )
    _validate(profile, source)
    return profile


def parse_installed(text: str) -> dict[str, str]:
    """`stable=<revision>,canary=<revision>` -> {"stable": ..., "canary": ...}; one line naming a bad part."""
    wanted: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        role, sep, revision = part.partition("=")
        if not sep or role not in ROLES or not revision:
            raise UsageError(f"--installed {text}: expected stable=<revision>,canary=<revision>, not {part!r}")
        wanted[role] = revision
    missing = [role for role in ROLES if role not in wanted]
    if missing:
        raise UsageError(f"--installed {text}: names no {' and no '.join(missing)} revision")
    if wanted["stable"] == wanted["canary"]:
        raise UsageError(f"--installed {text}: stable and canary are the same revision")
    return wanted



def _installed_in(raw: Any, source: str) -> str | None:
    """A profile's `installed: {stable: <revision>, canary: <revision>}`, as --installed would say it."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise UsageError(f"{source}: 'installed' must be a mapping stable: <revision>, canary: <revision>")
    return ",".join(f"{role}={revision}" for role, revision in raw.items())


def _read(name: str, path: Path | None) -> dict[str, Any]:
    if path is not None:
        try:
            text = path.read_text()
        except OSError as exc:
            raise UsageError(f"cannot read --profile-file {path}: {exc.strerror}") from exc
    else:
        if name not in builtin_profiles():
            raise UsageError(f"unknown --profile '{name}': choose one of {', '.join(builtin_profiles())}")
        text = (resources.files("multirev") / "profiles" / f"{name}.yaml").read_text()
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UsageError(f"profile {path or name} is not valid YAML{where}: {problem}") from exc
    if not isinstance(data, dict):
        raise UsageError(f"profile {path or name} must be a mapping with 'stable' and 'canary'")
    _refuse_unknown(data, TOP_LEVEL_KEYS, f"profile {path or name}")
    for role in ROLES:
        if isinstance(data.get(role), dict):
            _refuse_unknown(data[role], PLANE_KEYS, f"profile {path or name}: {role}")
    return data


# What a profile may say (issue 27: `revison:` or a top-level `layout:` were silently ignored).
TOP_LEVEL_KEYS = ("name", "description", "stable", "canary", "installer", "installed", "variant", "assume_facts_of")
PLANE_KEYS = ("version", "revision", "namespace", "tag", "app_namespaces")
_OPTION_ONLY = {"layout": "--layout"}


def _refuse_unknown(raw: dict, known: tuple[str, ...], where: str) -> None:
    for key in raw:
        if key in known:
            continue
        if key in _OPTION_ONLY:
            raise UsageError(f"{where}: '{key}' is not a profile key; choose it with {_OPTION_ONLY[key]}")
        close = difflib.get_close_matches(str(key), known, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise UsageError(f"{where}: unknown key '{key}'; {hint}known: {', '.join(known)}")


def _plane(role: str, raw: Any, source: str, version_override: str | None) -> ControlPlane:
    if not isinstance(raw, dict):
        raise UsageError(f"{source}: '{role}' must be a mapping with version, namespace, tag, app_namespaces")
    missing = [k for k in ("version", "namespace", "tag", "app_namespaces") if k not in raw]
    if missing:
        raise UsageError(f"{source}: '{role}' lacks {', '.join(missing)}")
    version = IstioVersion.parse(str(version_override or raw["version"]))
    check_known(version)
    # An overridden version gets the revision derived from it: the profile's revision named the old one.
    revision = version.revision if version_override else str(raw.get("revision") or version.revision)
    apps = raw["app_namespaces"]
    if not isinstance(apps, list) or not apps:
        raise UsageError(f"{source}: '{role}.app_namespaces' must be a non-empty list")
    return ControlPlane(role, version, str(raw["namespace"]), revision, str(raw["tag"]), tuple(map(str, apps)))


def _validate(profile: Profile, source: str) -> None:
    for plane in profile.planes:
        for what, value in [("namespace", plane.namespace), ("revision", plane.revision), ("tag", plane.tag),
                            *[("app namespace", a) for a in plane.app_namespaces]]:
            if not _DNS_LABEL.match(value):
                raise UsageError(f"{source}: {plane.role} {what} '{value}' is not a valid Kubernetes name")
    s, c = profile.stable, profile.canary
    if s.revision == c.revision:
        raise UsageError(f"{source}: stable and canary both use revision '{s.revision}'")
    if s.tag == c.tag:
        raise UsageError(f"{source}: stable and canary both use tag '{s.tag}'")
    if shared := sorted(set(s.app_namespaces) & set(c.app_namespaces)):
        raise UsageError(f"{source}: app namespace {', '.join(map(repr, shared))} is in both stable and canary; a "
                         "namespace is injected by one revision, so give each plane its own")
    for plane in profile.planes:
        if clash := sorted(set(plane.app_namespaces) & {s.namespace, c.namespace}):
            raise UsageError(f"{source}: {plane.role} app namespace {', '.join(map(repr, clash))} is also a control "
                             "plane's namespace; apps need namespaces of their own")
    if not profile.installed:
        _validate_default_revision(profile, source)
    common_kubernetes(s.version, c.version)


def _validate_default_revision(profile: Profile, source: str) -> None:
    """A profile may install its stable control plane without a revision (`revision: default`), the way most meshes
    start: `istioctl install` then makes the `default` tag for it every time (operator/pkg/webhook/webhook.go@1.30.3
    detectIfTagWebhookIsNeeded), so that plane's tag is `default`, and its app namespaces are labelled
    istio-injection=enabled, which that tag's webhook selects (manifests/charts/istio-control/istio-discovery/
    templates/revision-tags-mwc.yaml@1.30.3). The canary is revisioned: two planes without a revision would be one."""
    s, c = profile.stable, profile.canary
    if c.revision == facts.DEFAULT_REVISION:
        raise UsageError(f"{source}: canary revision '{facts.DEFAULT_REVISION}' means a canary installed without a "
                         "revision, which would take the default tag over from stable; give the canary a revision "
                         "(only stable may be the default revision)")
    for plane in profile.planes:
        is_default = plane.revision == facts.DEFAULT_REVISION
        if is_default and plane.tag != facts.DEFAULT_TAG:
            raise UsageError(f"{source}: {plane.role} revision '{facts.DEFAULT_REVISION}' is installed without a "
                             f"revision, and istioctl install makes tag '{facts.DEFAULT_TAG}' for it; set its tag to "
                             f"'{facts.DEFAULT_TAG}', not '{plane.tag}'")
        if not is_default and plane.tag == facts.DEFAULT_TAG:
            raise UsageError(f"{source}: tag '{facts.DEFAULT_TAG}' is reserved by istioctl install (it names the "
                             "first revision installed); only a plane with revision 'default' uses it")
    if s.revision == facts.DEFAULT_REVISION and profile.installer == "helm":
        # Helm's default revision serves istio-injection=enabled through its own injector and makes no `default`
        # tag (istio@1.30.3: manifests/charts/istio-control/istio-discovery/templates/mutatingwebhook.yaml); the
        # suite's upgrade of it moves that tag, as Istio's istioctl canary page does.
        raise UsageError(f"{source}: a stable plane installed without a revision is certified with istioctl only "
                         "(Helm makes no default tag for it); drop --installer helm")
