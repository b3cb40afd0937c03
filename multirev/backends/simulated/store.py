"""An in-memory object store with the API-server semantics the suite relies on."""

from __future__ import annotations

import copy
import itertools

from multirev.kube.kinds import Kind
from multirev.kube.objects import Obj, labels_of

Key = tuple[str, str]  # namespace ("" when cluster-scoped), name


class ObjectStore:
    """Objects indexed by kind, kept in creation order (which makes every listing deterministic)."""

    def __init__(self) -> None:
        # By group and kind: Istio's Gateway and Gateway API's share the kind name.
        self._by_kind: dict[tuple[str, str], dict[Key, Obj]] = {}
        self._versions = itertools.count(1)

    @staticmethod
    def key(kind: Kind, name: str, namespace: str | None) -> Key:
        return ((namespace or "") if kind.namespaced else "", name)

    def put(self, kind: Kind, obj: Obj) -> Obj:
        obj = copy.deepcopy(obj)
        obj["apiVersion"], obj["kind"] = kind.api_version, kind.kind
        meta = obj.setdefault("metadata", {})
        if not kind.namespaced:
            meta.pop("namespace", None)
        objects = self._by_kind.setdefault(_bucket(kind), {})
        key = self.key(kind, meta["name"], meta.get("namespace"))
        previous = objects.get(key)
        meta.setdefault("uid", previous["metadata"]["uid"] if previous else f"uid-{next(self._versions)}")
        meta["resourceVersion"] = str(next(self._versions))
        meta.setdefault("generation", 1)
        objects[key] = obj
        return copy.deepcopy(obj)

    def get(self, kind: Kind, name: str, namespace: str | None = None) -> Obj | None:
        found = self.raw(kind, name, namespace)
        return copy.deepcopy(found) if found else None

    def raw(self, kind: Kind, name: str, namespace: str | None = None) -> Obj | None:
        """The stored object itself, for the model's controllers to update in place."""
        return self._by_kind.get(_bucket(kind), {}).get(self.key(kind, name, namespace))

    def list(self, kind: Kind, namespace: str | None = None, labels: dict[str, str] | None = None) -> list[Obj]:
        return [copy.deepcopy(o) for o in self.raw_list(kind, namespace, labels)]

    def raw_list(self, kind: Kind, namespace: str | None = None, labels: dict[str, str] | None = None) -> list[Obj]:
        out = []
        for (ns, _), obj in self._by_kind.get(_bucket(kind), {}).items():
            if namespace and kind.namespaced and ns != namespace:
                continue
            if labels:
                own = labels_of(obj)
                if any(own.get(a) != b for a, b in labels.items()):
                    continue
            out.append(obj)
        return out

    def delete(self, kind: Kind, name: str, namespace: str | None = None) -> bool:
        return self._by_kind.get(_bucket(kind), {}).pop(self.key(kind, name, namespace), None) is not None

    def all(self) -> list[Obj]:
        return [copy.deepcopy(o) for objects in self._by_kind.values() for o in objects.values()]


def _bucket(kind: Kind) -> tuple[str, str]:
    group = kind.api_version.rsplit("/", 1)[0] if "/" in kind.api_version else ""
    return group, kind.kind
