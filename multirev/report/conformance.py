"""The per-feature conformance report: what passed, for which versions, on which cluster.

The JSON shape is versioned (`schema_version`) and described by multirev/report/schema.json and
docs/conformance-report.md; the Markdown file says the same for people.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from multirev.conformance import FEATURES
from multirev.redact import redact_text

SCHEMA_VERSION = 1
SIMULATED_NOTICE = ("SIMULATED RUN - NOT A CERTIFICATION: these results come from the simulated backend, a model "
                    "of a kind cluster running Istio. No real cluster, istiod or Envoy was involved.")
RESULTS = ("passed", "failed", "skipped", "not-run")


def schema() -> dict[str, Any]:
    return json.loads((resources.files("multirev") / "report" / "schema.json").read_text())


@dataclass
class TestOutcome:
    nodeid: str
    feature: str
    outcome: str = "passed"  # passed | failed | error | skipped
    message: str = ""
    duration: float = 0.0
    properties: dict[str, str] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"nodeid": self.nodeid, "outcome": self.outcome, "duration": round(self.duration, 3)}
        if self.message:
            out["message"] = redact_text(self.message)[:4000]
        if self.properties:
            out["properties"] = {k: redact_text(str(v))[:2000] for k, v in self.properties.items()}
        return out


def feature_results(outcomes: list[TestOutcome]) -> dict[str, dict[str, Any]]:
    features: dict[str, dict[str, Any]] = {}
    for name in FEATURES:
        tests = [o for o in outcomes if o.feature == name]
        entry: dict[str, Any] = {"tests": [t.as_json() for t in sorted(tests, key=lambda t: t.nodeid)]}
        if not tests:
            entry.update(result="not-run", reason="no test of this feature was selected")
        elif any(t.outcome in ("failed", "error") for t in tests):
            entry["result"] = "failed"
        elif all(t.outcome == "skipped" for t in tests):
            entry.update(result="skipped", reason="; ".join(sorted({t.message for t in tests if t.message})) or
                         "all tests skipped")
        else:
            entry["result"] = "passed"
        features[name] = entry
    return features


def build(meta: dict[str, Any], outcomes: list[TestOutcome]) -> dict[str, Any]:
    features = feature_results(outcomes)
    report = {"schema_version": SCHEMA_VERSION, **meta, "features": features,
              "summary": {r: sum(1 for f in features.values() if f["result"] == r) for r in RESULTS}}
    if report["simulated"]:
        report["notice"] = SIMULATED_NOTICE
    return report


def markdown(report: dict[str, Any]) -> str:
    lines = []
    if report["simulated"]:
        lines += [f"> **{SIMULATED_NOTICE}**", ""]
    lines += [f"# Multi-revision Istio conformance: run {report['run_id']}", ""]
    s, c = report["stable"], report["canary"]
    lines += [
        "| | |", "|---|---|",
        f"| backend | {report['backend']}{' (SIMULATED)' if report['simulated'] else ''} |",
        f"| profile / layout / installer | {report['profile']} / {report['layout']} / "
        f"{report.get('installer', 'istioctl')} |",
        f"| stable | Istio {s['version']}, revision `{s['revision']}` in `{s['namespace']}`, tag `{s['tag']}` |",
        f"| canary | Istio {c['version']}, revision `{c['revision']}` in `{c['namespace']}`, tag `{c['tag']}` |",
        f"| Kubernetes | {report['kubernetes_version'] or 'unknown'} |",
        f"| kind node image | {report['node_image'] or '-'} (kind {report['kind_version'] or '-'}) |",
        f"| started / finished | {report['started']} / {report['finished']} |",
    ]
    for role, plane in (("stable", s), ("canary", c)):
        if found := plane.get("installed"):
            lines.append(f"| {role} as found (--installed) | {_found(found)} |")
    if (report.get("data_plane") or {}).get("envoy"):
        plane = report["data_plane"]
        lines.append(f"| data plane | Envoy {plane['envoy']}; {len(plane.get('proxies') or [])} proxies started |")
    elif (report.get("data_plane") or {}).get("missing"):
        lines.append(f"| data plane | none: {report['data_plane']['missing']} |")
    if report.get("gateway_api"):
        api = report["gateway_api"]
        lines.append(f"| Gateway API | {api['version']} ({api['channel']} channel; {api['source']}) |")
    if report.get("faults"):
        lines.append(f"| injected faults | {', '.join(report['faults'])} |")
    for note in report.get("notes") or []:
        lines.append(f"| note | {note} |")
    lines += ["", "| feature | result | tests |", "|---|---|---|"]
    for name, feature in report["features"].items():
        result = feature["result"].upper() if feature["result"] == "failed" else feature["result"]
        counts = ", ".join(f"{sum(1 for t in feature['tests'] if t['outcome'] == o)} {o}"
                           for o in ("passed", "failed", "error", "skipped")
                           if any(t["outcome"] == o for t in feature["tests"]))
        reason = f" ({feature['reason']})" if feature.get("reason") else ""
        lines.append(f"| {name} | {result}{reason} | {counts or '-'} |")
    failures = [(t["nodeid"], t.get("message", "")) for f in report["features"].values() for t in f["tests"]
                if t["outcome"] in ("failed", "error")]
    if failures:
        lines += ["", "## Failures", ""]
        for nodeid, message in failures:
            lines += [f"### `{nodeid}`", "", "```", message.strip()[:3000], "```", ""]
    return "\n".join(lines) + "\n"


def _found(found: dict[str, Any]) -> str:
    labels = found["discovery_labels"]
    parts = [f"tags {', '.join(f'`{t}`' for t in found['tags']) or 'none'}",
             "sees every namespace" if labels == {} else
             f"sees namespaces labelled {', '.join(f'`{k}={v}`' for k, v in labels.items())}" if labels else
             "namespaces it sees: not derivable",
             f"ingress {found['ingress_gateway'] or 'none'}", f"egress {found['egress_gateway'] or 'none'}",
             *(f"`{key}`: `{value}`" for key, value in found["mesh_config"].items() if key != "discoverySelectors")]
    return "; ".join(parts)


def write(folder: Path, report: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "conformance.json").write_text(json.dumps(report, indent=2) + "\n")
    (folder / "conformance.md").write_text(markdown(report))
