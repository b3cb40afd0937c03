"""Small helpers over Kubernetes objects as plain dicts."""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]


def name_of(obj: Obj) -> str:
    return obj["metadata"]["name"]


def namespace_of(obj: Obj) -> str | None:
    return obj["metadata"].get("namespace")


def labels_of(obj: Obj) -> dict[str, str]:
    return obj.get("metadata", {}).get("labels") or {}


def annotations_of(obj: Obj) -> dict[str, str]:
    return obj.get("metadata", {}).get("annotations") or {}


def ref(obj: Obj) -> str:
    ns = namespace_of(obj)
    return f"{obj['kind']} {ns}/{name_of(obj)}" if ns else f"{obj['kind']} {name_of(obj)}"


def matches_selector(labels: dict[str, str], selector: dict | None) -> bool:
    """Kubernetes LabelSelector semantics (matchLabels AND every matchExpression)."""
    if not selector:
        return True
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        present = key in labels
        if op == "In" and not (present and labels[key] in values):
            return False
        if op == "NotIn" and present and labels[key] in values:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
    return True


def parse_label_selector(text: str | None) -> dict[str, str]:
    """'a=b,c=d' -> {'a': 'b', 'c': 'd'} (equality selectors only, which is all the suite uses)."""
    if not text:
        return {}
    pairs = (part.split("=", 1) for part in text.split(",") if part)
    return {k.strip(): v.strip() for k, v in pairs}


def format_label_selector(labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
