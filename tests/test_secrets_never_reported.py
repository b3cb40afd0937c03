"""Secrets planted in the cluster never reach any report file, even when a failing run collects diagnostics."""

from __future__ import annotations

import base64
from pathlib import Path

from tests.credential_scan import credential_leaks
from tests.suite_runner import run_suites

PLANTED = {
    "env": "PLANTED-ENV-SECRET-7f3a",
    "annotation": "PLANTED-ANNOTATION-SECRET-91c2",
    "configmap": "PLANTED-CONFIGMAP-PASSWORD-5d08",
    "secret": "PLANTED-SECRET-DATA-c4e1",
    "pem": "PLANTEDPEMBODYa1b2c3d4",
    "bearer": "PLANTED-BEARER-TOKEN-88aa",
}

PLUGIN = f'''
import base64
from multirev.faults import fault

PLANTED = {PLANTED!r}

@fault("plant-secrets", "plants credentials in objects, events and pods, and breaks injection so a run fails",
       must_fail=["suites/test_injection.py::"])
def install(hooks):
    def plant_objects(objects, *, revision, install_order, **_):
        ns = [o for o in objects if o["kind"] == "Deployment"][0]["metadata"]["namespace"]
        meta = {{"name": f"planted-{{install_order}}", "namespace": ns}}
        return objects + [
            {{"apiVersion": "v1", "kind": "Secret", "metadata": meta,
             "data": {{"token": base64.b64encode(PLANTED["secret"].encode()).decode()}}}},
            {{"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta,
             "data": {{"db_password": PLANTED["configmap"]}}}},
            {{"apiVersion": "v1", "kind": "Event", "metadata": meta,
             "reason": "Planted", "message": "key: -----BEGIN PRIVATE KEY-----\\n" + PLANTED["pem"]
             + "\\n-----END PRIVATE KEY----- and Authorization: Bearer " + PLANTED["bearer"]}},
        ]

    def plant_pod(pod, **_):
        for container in pod["spec"].get("containers", []):
            container.setdefault("env", []).append({{"name": "API_TOKEN", "value": PLANTED["env"]}})
        pod["metadata"].setdefault("annotations", {{}})["example.com/auth-token"] = PLANTED["annotation"]
        return pod

    hooks.add("install_objects", plant_objects)
    hooks.add("pod_admitted", plant_pod)
    hooks.add("proxy_image", lambda image, **_: image + "-broken")
'''


def test_planted_secrets_are_redacted_everywhere(tmp_path: Path) -> None:
    plugin = tmp_path / "plant.py"
    plugin.write_text(PLUGIN)
    reports = tmp_path / "reports"
    run = run_suites(reports, "--backend", "simulated", f"--sim-fault-plugin={plugin}", "--sim-fault", "plant-secrets")
    assert run.returncode == 1 and run.failed(), run.output[-2000:]
    diagnostics = list((reports / "diagnostics").rglob("*"))
    assert any(p.name == "workloads.yaml" for p in diagnostics), "a failing run must leave diagnostics"
    assert any(p.name == "events.yaml" for p in diagnostics)
    # the planted values did reach the collected objects (so redaction, not absence, keeps them out)
    assert "<redacted>" in next(p for p in diagnostics if p.name == "workloads.yaml").read_text()
    secrets = [*PLANTED.values(), base64.b64encode(PLANTED["secret"].encode()).decode()]
    files = [p for p in reports.rglob("*") if p.is_file()]
    assert len(files) > 20
    leaks = [(str(p.relative_to(reports)), s) for p in files for s in secrets if s in p.read_text(errors="replace")]
    assert not leaks, f"secrets reached report files: {leaks}"
    assert not credential_leaks(reports), "keys, tokens or kubeconfigs reached the reports tree"
    assert PLANTED["env"] not in run.output
