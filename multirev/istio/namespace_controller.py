"""Which namespaces an istiod writes its trust root into.

istiod's namespace controller puts its root into the `istio-ca-root-cert` ConfigMap of every namespace it watches,
creates it where it is missing and writes it back whenever anyone else changes it
(istio@1.29.6:pilot/pkg/serviceregistry/kube/controller/namespacecontroller.go: it reconciles on Namespace and on
istio-ca-root-cert events). Which namespaces it watches is decided by its mesh config's `discoverySelectors`
(pkg/kube/namespace/filter.go@1.29.6: none set, or an empty list, selects every namespace; a namespace is selected
when any selector matches its labels) and, before 1.25, by a setting:

- before 1.16 the controller has no discovery filter: every namespace (namespacecontroller.go@1.15.7);
- 1.16 to 1.21 it is given the filter only with ENABLE_ENHANCED_RESOURCE_SCOPING, default false
  (serviceregistry/kube/controller/multicluster.go@1.16.0 and @1.21.0; pilot/pkg/features/pilot.go@1.16.0,
  features/experimental.go@1.21.0);
- 1.22 to 1.24 the same setting, default true (namespacecontroller.go@1.22.0 FilterIfEnhancedFilteringEnabled;
  features/experimental.go@1.22.0);
- from 1.25 always (namespacecontroller.go@1.25.0 and @1.29.6: kubeClient.ObjectFilter()).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import yaml

from multirev.istio import facts
from multirev.kube.objects import Obj, labels_of, matches_selector

# Every istiod Deployment and its pods carry these (istio-discovery chart templates/deployment.yaml@1.29.6, @1.18.5).
ISTIOD_LABELS = {"app": "istiod"}
MESH_KEY = "mesh"  # the mesh ConfigMap's key (pkg/config/mesh/kubemesh/watcher.go@1.29.6 MeshConfigKey)
SCOPING_SETTING = "ENABLE_ENHANCED_RESOURCE_SCOPING"
# Namespaces the controller never writes to: inject.IgnoredNamespaces less kube-system
# (pkg/kube/inject/initializer.go@1.29.6; namespacecontroller.go@1.29.6 "to enable deploying ztunnel").
IGNORED_NAMESPACES = frozenset({"kube-public", "kube-node-lease", "local-path-storage"})
_MINOR = re.compile(r"^v?(\d+)\.(\d+)")
# Go's strconv.ParseBool, which istio's env.Register uses; anything else leaves the default.
_TRUE, _FALSE = {"1", "t", "T", "TRUE", "true", "True"}, {"0", "f", "F", "FALSE", "false", "False"}


def revision_of(deployment: Obj) -> str:
    return labels_of(deployment).get(facts.REV_LABEL) or "default"


def mesh_config_map(revision: str) -> str:
    """`istio` for the default revision, else `istio-<rev>`, in istiod's namespace
    (istio@1.29.6:pilot/pkg/bootstrap/mesh.go getMeshConfigMapName)."""
    return "istio" if revision in ("", "default") else f"istio-{revision}"


@dataclass(frozen=True)
class Istiod:
    """One istiod as its Deployment and mesh ConfigMap describe it."""

    namespace: str
    name: str  # its Deployment
    revision: str
    config_map: str  # its mesh ConfigMap, in `namespace`
    minor: tuple[int, int] | None  # from its image tag; None where the tag names no version
    selectors: tuple[dict, ...] | None  # meshConfig.discoverySelectors; None where it sets none (or an empty list)
    scoping: bool | None  # ENABLE_ENHANCED_RESOURCE_SCOPING as its container sets it; None: unset

    @classmethod
    def of(cls, deployment: Obj, mesh_config: Obj | None) -> Istiod:
        """`mesh_config`: the ConfigMap named `mesh_config_map(revision_of(deployment))`, or None if missing (istiod
        then runs on the default mesh config, which has no discoverySelectors)."""
        meta = deployment["metadata"]
        revision = revision_of(deployment)
        containers = ((deployment.get("spec") or {}).get("template") or {}).get("spec", {}).get("containers") or []
        container = next((c for c in containers if c.get("name") == "discovery"), containers[0] if containers else {})
        env = {e.get("name"): e.get("value") for e in container.get("env") or []}
        setting = env.get(SCOPING_SETTING)
        scoping = True if setting in _TRUE else False if setting in _FALSE else None
        return cls(meta["namespace"], meta["name"], revision, mesh_config_map(revision),
                   _image_minor(container.get("image") or ""), _selectors(mesh_config), scoping)

    @property
    def honours_selectors(self) -> bool:
        """Whether its namespace controller keeps to its discoverySelectors (see the module's docstring). An image
        whose tag names no version is taken to be a current build."""
        if self.minor is None or self.minor >= (1, 25):
            return True
        if self.minor < (1, 16):
            return False
        return self.scoping if self.scoping is not None else self.minor >= (1, 22)

    def watches(self, namespace: str, labels: dict[str, str]) -> bool:
        """Whether it writes its root into `namespace` while the namespace carries `labels`."""
        if namespace in IGNORED_NAMESPACES:
            return False
        if self.selectors is None or not self.honours_selectors:
            return True
        # A null selector selects nothing, an empty one everything (filter.go LabelSelectorAsSelector).
        return any(selector is not None and matches_selector(labels, selector) for selector in self.selectors)


def _image_minor(image: str) -> tuple[int, int] | None:
    """1.29 from e.g. docker.io/istio/pilot:1.29.6 or registry.istio.io/release/pilot:1.30.3-distroless."""
    name = image.split("@", 1)[0].rsplit("/", 1)[-1]
    match = _MINOR.match(name.split(":", 1)[1]) if ":" in name else None
    return (int(match.group(1)), int(match.group(2))) if match else None


def _selectors(mesh_config: Obj | None) -> tuple[dict, ...] | None:
    text = ((mesh_config or {}).get("data") or {}).get(MESH_KEY) or ""
    try:
        mesh = yaml.safe_load(text) or {}
    except yaml.YAMLError:
        return None  # istiod would not take it either; it then keeps the default mesh config (no selectors)
    selectors = mesh.get("discoverySelectors") if isinstance(mesh, dict) else None
    return tuple(selectors) if selectors else None
