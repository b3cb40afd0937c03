"""What runs for each container of a pod: the real program where one runs here, else a stand-in.

- Istio's own containers (image `proxyv2`: istio-init, istio-proxy, gateways) run the real pilot-agent
  of the version the image tag names (the revision's own build), with the container's args and env, as
  the image's entrypoint would (`/usr/local/bin/pilot-agent`: tools/istio-docker.mk and
  pilot/docker/Dockerfile.proxyv2 at release-1.31). PROXY_CONFIG gains `binaryPath` (where Envoy is here)
  and `concurrency: 1` (two cores); see envoy.py.
- nginx images run Debian's nginx, serving its welcome page on the container port.
- Bookinfo and echo images run the stand-ins in apps.py.
- Any other container whose command exists on this machine (the mesh client's `/bin/sleep`) runs as is.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from multirev.backends.local.istiod import container_env, image_tag
from multirev.backends.local.pods import apps
from multirev.kube.objects import Obj

ISTIO_PROXY_IMAGE = "proxyv2"  # istio-discovery chart values: global.proxy.image (release-1.31)
NGINX_CONF = """\
pid {root}/nginx.pid;
error_log stderr warn;
daemon off;
events {{ worker_connections 64; }}
http {{
  access_log /dev/stdout;
  client_body_temp_path {root}/body; proxy_temp_path {root}/proxy; fastcgi_temp_path {root}/fastcgi;
  uwsgi_temp_path {root}/uwsgi; scgi_temp_path {root}/scgi;
  server {{
    listen {port};
    root /var/www/html;
    index index.html index.nginx-debian.html;
  }}
}}
"""
_VAR = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


@dataclass
class Program:
    container: str
    argv: list[str]
    env: dict[str, str]
    uid: int | None = None  # from the container's securityContext; None: root
    gid: int | None = None
    init: bool = False  # runs to completion before the next container starts
    proxy: bool = False  # Istio's agent (readiness from its :15021)
    istio_version: str = ""  # for Istio's own containers: the build whose files the image would carry
    notes: list[str] = field(default_factory=list)


def expand(text: str, env: dict[str, str]) -> str:
    """$(VAR) references in args, as kubelet expands them (pkg/kubelet/container/helpers.go@v1.35.4)."""
    return _VAR.sub(lambda m: env.get(m.group(1), m.group(0)), text)


def with_local_envoy(proxy_config: str, envoy: Path) -> str:
    config = json.loads(proxy_config) if proxy_config.strip() else {}
    config["binaryPath"] = str(envoy)  # ProxyConfig.binary_path; default /usr/local/bin/envoy
    config["concurrency"] = 1
    return json.dumps(config)


def program(pod: Obj, container: Obj, *, init: bool, pilot_agents: dict[str, Path], envoys: dict[str, Path],
            root: Path) -> Program | str:
    """The program for one container, or why none can run here."""
    name, image = container["name"], container.get("image", "")
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/",
           "HOSTNAME": pod["metadata"]["name"],  # kubelet sets it to the pod name
           **container_env(pod, container)}
    security = container.get("securityContext") or {}
    pod_security = pod["spec"].get("securityContext") or {}
    uid = security.get("runAsUser", pod_security.get("runAsUser"))
    gid = security.get("runAsGroup", pod_security.get("runAsGroup"))
    args = [expand(a, env) for a in container.get("args") or []]
    command = [expand(c, env) for c in container.get("command") or []]
    restart_always = container.get("restartPolicy") == "Always"  # a native sidecar
    if ISTIO_PROXY_IMAGE in image.rsplit("/", 1)[-1]:
        version = image_tag(image)
        agent = pilot_agents.get(version)
        if agent is None:
            return (f"container {name} asks for Istio {version or '?'} ({image}); the local backend built "
                    f"{', '.join(sorted(pilot_agents))}")
        is_proxy = bool(args) and args[0] == "proxy"
        if is_proxy:
            envoy = envoys.get(version)
            if envoy is None:
                return f"container {name} needs the Envoy of Istio {version}, which is not there"
            env["PROXY_CONFIG"] = with_local_envoy(env.get("PROXY_CONFIG", ""), envoy)
        return Program(name, [str(agent), *(command[1:] if command else []), *args], env, uid, gid,
                       init=init and not restart_always, proxy=is_proxy, istio_version=version)
    stand_in = apps.stand_in(image)
    if stand_in is not None:
        app, extra = stand_in
        port = _container_port(container)
        if port is not None:
            extra = [*extra, "--port", str(port)]
        return Program(name, [sys.executable, "-m", "multirev.backends.local.pods.apps", app, *extra], env, None,
                       None, init=init and not restart_always)
    if "nginx" in image.rsplit("/", 1)[-1].split(":")[0]:
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        folder = root / f"nginx-{name}"
        folder.mkdir(parents=True, exist_ok=True)
        conf = folder / "nginx.conf"
        conf.write_text(NGINX_CONF.format(root=folder, port=_container_port(container) or 80))
        return Program(name, [nginx, "-c", str(conf)], env, None, None, init=init and not restart_always)
    if command and Path(command[0]).is_file():
        return Program(name, [*command, *args], env, uid, gid, init=init and not restart_always)
    return f"container {name}: no way to run image {image} here (no stand-in, and its command is not on this machine)"


def _container_port(container: Obj) -> int | None:
    ports = container.get("ports") or []
    return int(ports[0]["containerPort"]) if ports else None
