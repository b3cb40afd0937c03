"""The part of a kubelet that KWOK does not play when real processes run behind its pods: readiness.

KWOK's own pod stage (kwok@v0.8.0 kustomize/stage/pod/fast/pod-ready.yaml) marks a pod Ready the moment it
gets an IP. With a data plane, a pod is Ready only once what runs behind it is: istiod's `/ready` (the
chart's readinessProbe), the proxy's `/healthz/ready` on 15021 (the injected container's readinessProbe),
and the app's port open. So KWOK is given this stage instead, which assigns the IP and marks the
containers running but not ready; `mark_ready` then sets the conditions as the kubelet's status manager
would (pkg/kubelet/status/generate.go@v1.35.4: Ready and ContainersReady follow the containers).
"""

from __future__ import annotations

import datetime
from pathlib import Path

from multirev.kube.objects import Obj

# A KWOK Stage (kwok.x-k8s.io/v1alpha1, fields in pkg/apis/v1alpha1/stage_types.go@v0.8.0). Its template
# functions (Now, Quote, NodeIPWith, PodIPWith) are KWOK's (pkg/kwok/controllers/renderer.go@v0.8.0).
POD_STARTED_NOT_READY_STAGE = """\
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: pod-started-not-ready
spec:
  resourceRef: {apiGroup: v1, kind: Pod}
  selector:
    matchExpressions:
    - {key: '.metadata.deletionTimestamp', operator: DoesNotExist}
    - {key: '.status.podIP', operator: DoesNotExist}
  next:
    statusTemplate: |
      {{ $started := Now }}
      phase: Running
      startTime: {{ $started | Quote }}
      hostIP: {{ NodeIPWith .spec.nodeName | Quote }}
      podIP: {{ PodIPWith .spec.nodeName ( or .spec.hostNetwork false ) ( or .metadata.uid "" )
        ( or .metadata.name "" ) ( or .metadata.namespace "" ) | Quote }}
      conditions:
      - {type: Initialized, status: "True", lastTransitionTime: {{ $started | Quote }}}
      - {type: ContainersReady, status: "False", reason: ContainersNotReady, lastTransitionTime: {{ $started | Quote }}}
      - {type: Ready, status: "False", reason: ContainersNotReady, lastTransitionTime: {{ $started | Quote }}}
      containerStatuses:
      {{ range .spec.containers }}
      - {name: {{ .name | Quote }}, image: {{ .image | Quote }}, ready: false, restartCount: 0, started: true,
         state: {running: {startedAt: {{ $started | Quote }}}}}
      {{ end }}
      initContainerStatuses:
      {{ range .spec.initContainers }}
      - name: {{ .name | Quote }}
        image: {{ .image | Quote }}
        restartCount: 0
        {{ if eq .restartPolicy "Always" }}
        ready: false
        started: true
        state: {running: {startedAt: {{ $started | Quote }}}}
        {{ else }}
        ready: true
        state:
          terminated: {exitCode: 0, reason: Completed, startedAt: {{ $started | Quote }},
                       finishedAt: {{ $started | Quote }}}
        {{ end }}
      {{ end }}
"""
POD_READY_STAGE = "kustomize/stage/pod/fast/pod-ready.yaml"  # the one it replaces


def write_stage(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "pod-started-not-ready.yaml"
    path.write_text(POD_STARTED_NOT_READY_STAGE)
    return path


def readiness_patch(pod: Obj, ready: bool, message: str = "") -> Obj:
    """A strategic-merge patch of the pod's status: conditions merge by type, container statuses by name."""
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    status = "True" if ready else "False"
    reason = {} if ready else {"reason": "ContainersNotReady", "message": message[:500]}
    spec = pod["spec"]
    patch: Obj = {
        "conditions": [{"type": t, "status": status, "lastTransitionTime": now, **reason}
                       for t in ("ContainersReady", "Ready")],
        "containerStatuses": [{"name": c["name"], "ready": ready} for c in spec.get("containers") or []],
    }
    sidecars = [{"name": c["name"], "ready": ready} for c in spec.get("initContainers") or []
                if c.get("restartPolicy") == "Always"]
    if sidecars:
        patch["initContainerStatuses"] = sidecars
    return {"status": patch}


def is_ready(pod: Obj) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])
