"""A pod's volumes as the kubelet would mount them, under the pod's folder instead of `/`.

pilot-agent and Envoy read their files relative to the working directory (`./var/run/secrets/istio/
root-cert.pem`, `./var/run/secrets/tokens/istio-token`, `./etc/istio/pod/labels`, ...:
pkg/istio-agent and pilot/cmd/pilot-agent/options at release-1.31), so a process started in the pod's
folder finds each volume where the injected container mounts it. Kinds handled: emptyDir, configMap,
secret, downwardAPI and projected (serviceAccountToken, configMap, secret, downwardAPI); each as
kubelet writes it (pkg/volume/* at v1.35.4). Optional sources that are missing leave an empty folder.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path

from multirev.backends.local.istiod import field_value
from multirev.kube.objects import Obj

GetObject = Callable[[str, str, str], Obj | None]  # (kind: "ConfigMap"|"Secret", namespace, name)
RequestToken = Callable[[str, str, str, list[str], int], str]  # namespace, service account, pod, audiences, s


def _downward_lines(values: dict[str, str]) -> str:
    # pkg/fieldpath/fieldpath.go@v1.35.4 FormatMap: sorted `key="value"` lines, values Go-quoted.
    return "\n".join(f"{k}={json.dumps(v)}" for k, v in sorted(values.items()))


def _downward_item(pod: Obj, item: Obj) -> str:
    path = (item.get("fieldRef") or {}).get("fieldPath", "")
    if path in ("metadata.labels", "metadata.annotations"):
        return _downward_lines(pod["metadata"].get(path.split(".")[1]) or {})
    return field_value(pod, path)


def _write(folder: Path, name: str, data: bytes) -> None:
    target = folder / name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    target.chmod(0o644)  # the proxy runs as uid 1337 and reads them; kubelet's default mode is 0644


def _key_files(data: dict[str, bytes], items: list[Obj] | None) -> dict[str, bytes]:
    if not items:
        return data
    return {item["path"]: data[item["key"]] for item in items if item["key"] in data}


def _configmap_data(obj: Obj | None) -> dict[str, bytes]:
    if obj is None:
        return {}
    data = {k: v.encode() for k, v in (obj.get("data") or {}).items()}
    data.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
    return data


def _secret_data(obj: Obj | None) -> dict[str, bytes]:
    return {k: base64.b64decode(v) for k, v in ((obj or {}).get("data") or {}).items()}


class VolumeMaker:
    def __init__(self, get: GetObject, request_token: RequestToken) -> None:
        self.get = get
        self.request_token = request_token

    def mount(self, pod: Obj, container: Obj, root: Path) -> None:
        """Write every volume the container mounts under `root` at its mountPath."""
        namespace = pod["metadata"]["namespace"]
        volumes = {v["name"]: v for v in pod["spec"].get("volumes") or []}
        for mount in container.get("volumeMounts") or []:
            volume = volumes.get(mount["name"])
            if volume is None:
                continue
            folder = root / mount["mountPath"].lstrip("/")
            folder.mkdir(parents=True, exist_ok=True)
            folder.chmod(0o777)  # emptyDir's mode; the proxy (uid 1337) writes its sockets and bootstrap here
            for name, data in self.files(pod, namespace, volume).items():
                if not mount.get("subPath") or name == mount["subPath"]:
                    _write(folder, name, data)

    def files(self, pod: Obj, namespace: str, volume: Obj) -> dict[str, bytes]:
        if "configMap" in volume:
            source = volume["configMap"]
            return _key_files(_configmap_data(self.get("ConfigMap", namespace, source["name"])), source.get("items"))
        if "secret" in volume:
            source = volume["secret"]
            name = source.get("secretName") or source["name"]  # `name` in a projected source
            return _key_files(_secret_data(self.get("Secret", namespace, name)), source.get("items"))
        if "downwardAPI" in volume:
            return {i["path"]: _downward_item(pod, i).encode() for i in volume["downwardAPI"].get("items") or []}
        if "projected" in volume:
            files: dict[str, bytes] = {}
            for source in volume["projected"].get("sources") or []:
                files.update(self.files(pod, namespace, source) if "serviceAccountToken" not in source
                             else self._token(pod, namespace, source["serviceAccountToken"]))
            return files
        return {}  # emptyDir and anything else: an empty folder

    def _token(self, pod: Obj, namespace: str, source: Obj) -> dict[str, bytes]:
        # A TokenRequest bound to the pod, as kubelet's token manager asks for it (pkg/kubelet/token).
        account = pod["spec"].get("serviceAccountName") or "default"
        audiences = [source["audience"]] if source.get("audience") else []
        token = self.request_token(namespace, account, pod["metadata"]["name"], audiences,
                                   int(source.get("expirationSeconds") or 3600))
        return {source["path"]: token.encode()}
