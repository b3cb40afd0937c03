"""An in-memory object store with the API-server semantics the suite relies on."""

from __future__ import annotations

import copy
import itertools

from multirev.kube.kinds import Kind
from multirev.kube.objects import Obj, labels_of

Key = tuple[str, str, str]  # kind, namespace ("" when cluster-scoped), name


class ObjectStore:
    def __init__(self) -> None:
        self._objects: dict[Key, Obj] = {}
        self._versions = itertools.count(1)

    @staticmethod
    def key(kind: Kind, name: str, namespace: str | None) -> Key:
        return (kind.kind, (namespace or "") if kind.namespaced else "", name)

    def put(self, kind: Kind, obj: Obj) -> Obj:
        obj = copy.deepcopy(obj)
        obj["apiVersion"], obj["kind"] = kind.api_version, kind.kind
        meta = obj.setdefault("metadata", {})
        if not kind.namespaced:
            meta.pop("namespace", None)
        key = self.key(kind, meta["name"], meta.get("namespace"))
        previous = self._objects.get(key)
        meta.setdefault("uid", previous["metadata"]["uid"] if previous else f"uid-{next(self._versions)}")
        meta["resourceVersion"] = str(next(self._versions))
        meta.setdefault("generation", 1)
        self._objects[key] = obj
        return copy.deepcopy(obj)

    def get(self, kind: Kind, name: str, namespace: str | None = None) -> Obj | None:
        found = self._objects.get(self.key(kind, name, namespace))
        return copy.deepcopy(found) if found else None

    def raw(self, kind: Kind, name: str, namespace: str | None = None) -> Obj | None:
        """The stored object itself, for the model's controllers to update in place."""
        return self._objects.get(self.key(kind, name, namespace))

    def list(self, kind: Kind, namespace: str | None = None, labels: dict[str, str] | None = None) -> list[Obj]:
        return [copy.deepcopy(o) for o in self.raw_list(kind, namespace, labels)]

    def raw_list(self, kind: Kind, namespace: str | None = None, labels: dict[str, str] | None = None) -> list[Obj]:
        out = []
        for (k, ns, _), obj in sorted(self._objects.items()):
            if k != kind.kind or (namespace and kind.namespaced and ns != namespace):
                continue
            if labels and any(labels_of(obj).get(a) != b for a, b in labels.items()):
                continue
            out.append(obj)
        return out

    def delete(self, kind: Kind, name: str, namespace: str | None = None) -> bool:
        return self._objects.pop(self.key(kind, name, namespace), None) is not None

    def all(self) -> list[Obj]:
        return [copy.deepcopy(o) for _, o in sorted(self._objects.items())]
