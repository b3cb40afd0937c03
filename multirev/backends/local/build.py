"""Build the local backend's binaries from their Go modules into a cache, with live progress.

`./run build-local` calls this; `--backend local` calls it on first use. Every build happens in a
small generated wrapper module: it requires the pinned module and turns the pinned module's own
relative `replace` lines (Kubernetes' staging modules, etcd's sibling modules) into versioned ones,
so the Go command resolves, downloads and checksum-verifies everything from the module proxy.
Finished binaries land in `<cache>/<component>/<version>/` with a BUILD-INFO.json, and are reused.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from multirev.backends.local.pins import ETCD, HELM, ISTIO, KUBERNETES, KWOK, IstioPin, ModulePin, Replacement
from multirev.cachelock import cache_entry_lock
from multirev.errors import EnvironmentProblem, UsageError
from multirev.istio import gateway_api
from multirev.istio.versions import IstioVersion

GO_MIN = (1, 26)  # kwok@v0.8.0 and istio release-1.31 declare `go 1.26.0` in go.mod
BUILD_INFO = "BUILD-INFO.json"
SOURCE_COPY = "source"  # a built folder's copy of the module files a run reads (Recipe.data)
PROBE_GO_MOD = "module multirev.local/probe\n\ngo 1.26\n"
FIXED_BUILD_DATE = "1970-01-01T00:00:00Z"  # reproducible builds; the version is what matters
PROGRESS_EVERY = 15.0  # seconds between live progress lines of one build
BUILD_LOCK_TIMEOUT = 3600.0  # a cold Kubernetes or Istio build takes ~7 min here; a waiter allows for several
# Environment that would turn module checksum verification off; the build refuses it.
UNVERIFIED_ENV = ("GONOSUMDB", "GONOSUMCHECK", "GOINSECURE", "GOPRIVATE")


def default_bin_cache() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return Path(os.environ.get("MULTIREV_BIN_CACHE", base / "multirev" / "bin"))


@dataclass(frozen=True)
class Recipe:
    """How to build one component: the pinned module, its main packages, tags and ldflags."""

    component: str
    version: str
    pin: ModulePin
    packages: dict[str, str]  # binary name -> Go main package
    tags: tuple[str, ...] = ()
    ldflags: tuple[str, ...] = ()
    # Version for a sibling module the pin's go.mod replaces with a relative path and requires as v0.0.0.
    staging_version: str = ""
    # Files and folders of the module's source a run reads (samples, stage files), copied next to the binaries
    # at build time: a run then needs no Go module cache.
    data: tuple[str, ...] = ()
    # Dependencies the module proxy refuses, replaced by served versions (pins.Replacement).
    replaces: tuple[Replacement, ...] = ()

    def folder(self, cache: Path) -> Path:
        return cache / self.component / self.version

    def source(self, cache: Path) -> Path:
        """Where the copied `data` lives, under the same relative paths as in the module."""
        return self.folder(cache) / SOURCE_COPY


def _x(package: str, values: dict[str, str]) -> tuple[str, ...]:
    return tuple(f"-X {package}.{name}={value}" for name, value in values.items())


def kubernetes_recipe() -> Recipe:
    version = KUBERNETES.version  # e.g. v1.35.4
    major, minor, patch = version.lstrip("v").split(".")
    # hack/lib/version.sh@v1.35.4 (kube::version::ldflags) sets these in both packages; the module zips hold
    # placeholders ($Format:%H$) for the ones not set. The commit is not known offline: left empty.
    values = {"gitVersion": version, "gitMajor": major, "gitMinor": minor, "gitTreeState": "clean",
              "gitCommit": "", "buildDate": FIXED_BUILD_DATE}
    ldflags = _x("k8s.io/component-base/version", values) + _x("k8s.io/client-go/pkg/version", values)
    # hack/lib/golang.sh@v1.35.4: release builds use these tags (and CGO_ENABLED=0 for these static binaries).
    return Recipe(
        "kubernetes", version, KUBERNETES,
        {name: f"k8s.io/kubernetes/cmd/{name}" for name in
         ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy")},
        tags=("selinux", "notest", "grpcnotrace"), ldflags=ldflags, staging_version=f"v0.{minor}.{patch}",
    )


def etcd_recipe() -> Recipe:
    # The server module's main package (server/main.go@v3.6.5); its version is a constant in api/version.
    return Recipe("etcd", ETCD.version, ETCD, {"etcd": "go.etcd.io/etcd/server/v3"})


# The stages KWOK runs with (kwok@v0.8.0: kustomize/stage/; it has none built in).
KWOK_STAGES = ("kustomize/stage/node/fast/node-initialize.yaml",
               "kustomize/stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
               "kustomize/stage/pod/fast/pod-ready.yaml", "kustomize/stage/pod/fast/pod-complete.yaml",
               "kustomize/stage/pod/fast/pod-delete.yaml")
# What a run reads from Istio's module: the samples (Bookinfo) and the proxy's bootstrap template, which
# pilot-agent expects next to it (tools/packaging/common/envoy_bootstrap.json@1.30.3, copied into the proxy image).
ISTIO_BOOTSTRAP = "tools/packaging/common/envoy_bootstrap.json"
# The release's Helm charts (base, istio-control/istio-discovery, gateway), for `--installer helm`: the same
# folder a release archive holds (manifests/charts), and the charts istioctl itself renders from.
ISTIO_CHARTS = "manifests/charts"
ISTIO_DATA = ("samples", ISTIO_BOOTSTRAP, ISTIO_CHARTS)


def kwok_recipe() -> Recipe:
    # kwok@v0.8.0: pkg/consts/consts.go holds Version, set by its Makefile's ldflags.
    return Recipe("kwok", KWOK.version, KWOK, {"kwok": "sigs.k8s.io/kwok/cmd/kwok"},
                  ldflags=_x("sigs.k8s.io/kwok/pkg/consts", {"Version": KWOK.version}), data=KWOK_STAGES)


def helm_recipe() -> Recipe:
    # helm@v4.3.0: Makefile sets the version with -X helm.sh/helm/v4/internal/version.version (`helm version`).
    return Recipe("helm", HELM.version, HELM, {"helm": "helm.sh/helm/v4/cmd/helm"},
                  ldflags=_x("helm.sh/helm/v4/internal/version", {"version": HELM.version, "gitTreeState": "clean"}))


def istio_recipe(pin: IstioPin) -> Recipe:
    # common/scripts/report_build_info.sh@1.30.3: the variables upstream's release build sets.
    values = {"buildVersion": pin.version, "buildGitRevision": pin.commit, "buildStatus": "Clean",
              "buildTag": pin.ref, "buildHub": pin.hub}
    return Recipe(
        "istio", pin.version, pin.pin,
        {"istioctl": "istio.io/istio/istioctl/cmd/istioctl",
         "pilot-discovery": "istio.io/istio/pilot/cmd/pilot-discovery",
         # The sidecar and gateway agent (and its istio-iptables), for the local backend's data plane.
         "pilot-agent": "istio.io/istio/pilot/cmd/pilot-agent"},
        tags=pin.tags, ldflags=_x(pin.version_package, values), data=ISTIO_DATA, replaces=pin.replaces,
    )


def recipes_for(istio_versions: list[str]) -> list[Recipe]:
    recipes = [etcd_recipe(), kubernetes_recipe(), kwok_recipe(), helm_recipe()]
    for version in istio_versions:
        pin = ISTIO.get(version)
        if pin is None:
            raise UsageError(f"the local backend has no build pin for Istio {version}; pinned: {', '.join(ISTIO)} "
                             "(multirev/backends/local/pins.py)")
        recipes.append(istio_recipe(pin))
    return recipes


# -- the Go command ------------------------------------------------------------------------------


@dataclass
class GoTool:
    go: str
    log: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True)
    env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def find(cls, log: Callable[[str], None] | None = None) -> GoTool:
        go = shutil.which("go")
        if go is None:
            raise EnvironmentProblem("the local backend builds from Go modules and no `go` command is installed "
                                     f"(Go {GO_MIN[0]}.{GO_MIN[1]} or newer is needed)")
        tool = cls(go) if log is None else cls(go, log)
        tool.env = tool._verified_env()
        found = tool.version()
        if found < GO_MIN:
            raise EnvironmentProblem(f"Go {found[0]}.{found[1]} is too old for the local backend's modules; "
                                     f"Go {GO_MIN[0]}.{GO_MIN[1]} or newer is needed")
        return tool

    def _verified_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in UNVERIFIED_ENV}
        sumdb = subprocess.run([self.go, "env", "GOSUMDB"], capture_output=True, text=True, env=env).stdout.strip()
        if sumdb == "off":
            raise EnvironmentProblem("GOSUMDB=off turns module checksum verification off; the local backend "
                                     "builds only verified modules (unset GOSUMDB)")
        flags = env.get("GOFLAGS", "")
        if "-insecure" in flags:
            raise EnvironmentProblem(f"GOFLAGS={flags!r} disables verification; unset it for the local backend")
        env["GOFLAGS"] = " ".join(f for f in flags.split() if not f.startswith("-mod=")) + " -mod=mod"
        env["GOTOOLCHAIN"] = env.get("GOTOOLCHAIN", "local")
        env["CGO_ENABLED"] = "0"  # static binaries, as upstream's release builds
        return env

    def version(self) -> tuple[int, int]:
        out = self.output(["env", "GOVERSION"]).strip()  # e.g. go1.26.8
        match = re.match(r"go(\d+)\.(\d+)", out)
        return (int(match.group(1)), int(match.group(2))) if match else (0, 0)

    def output(self, args: list[str], cwd: Path | None = None) -> str:
        proc = subprocess.run([self.go, *args], cwd=cwd, capture_output=True, text=True, env=self.env)
        if proc.returncode != 0:
            lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
            raise EnvironmentProblem(f"go {' '.join(args[:3])} failed: {' | '.join(lines[-4:]) or 'no output'}")
        return proc.stdout

    def stream(self, args: list[str], cwd: Path, what: str) -> None:
        """Run a long go command, printing a progress line every PROGRESS_EVERY seconds."""
        started = time.monotonic()
        compiled = 0
        tail: list[str] = []
        proc = subprocess.Popen([self.go, *args], cwd=cwd, env=self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        done = threading.Event()

        def report() -> None:
            while not done.wait(PROGRESS_EVERY):
                self.log(f"[multirev] {what}: {compiled} packages compiled, {time.monotonic() - started:.0f}s")

        reporter = threading.Thread(target=report, daemon=True)
        reporter.start()
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                compiled += 1  # `go build -v` names each package as it is built
                tail = (tail + [line.rstrip()])[-6:]
            code = proc.wait()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        finally:
            done.set()
        if code != 0:
            raise EnvironmentProblem(f"{what} failed (exit {code}): {' | '.join(tail)}")


# -- one build -------------------------------------------------------------------------------------


def _module_info(go: GoTool, pin: ModulePin, workdir: Path, what: str = "") -> dict:
    # On a refusal the go command exits 1 and still prints the JSON, whose Error says why.
    proc = subprocess.run([go.go, "mod", "download", "-json", f"{pin.module}@{pin.version}"], cwd=workdir,
                          capture_output=True, text=True, env=go.env)
    try:
        info = json.loads(proc.stdout)
    except ValueError:
        raise EnvironmentProblem(f"go mod download {pin.module}@{pin.version} failed: "
                                 f"{proc.stderr.strip()[-300:] or proc.returncode}") from None
    if info.get("Error"):
        refusal = " ".join(line.strip() for line in info["Error"].splitlines())
        raise EnvironmentProblem(f"{what or pin.module} cannot be built: {refusal}; see docs/backends.md "
                                 "(where the proxy serves only branch builds, use --profile local-dev)")
    if pin.zip_sum and info.get("Sum") != pin.zip_sum:
        raise EnvironmentProblem(f"{pin.module}@{pin.version} has checksum {info.get('Sum')}, but the pin says "
                                 f"{pin.zip_sum} (multirev/backends/local/pins.py)")
    return info


_REQUIRE = re.compile(r"^\s*(?:require\s+)?(\S+)\s+(v\S+)")
_RELATIVE_REPLACE = re.compile(r"^\s*(?:replace\s+)?(\S+)\s*=>\s*(\.\.?/\S*)\s*$")


def wrapper_go_mod(recipe: Recipe, pinned_go_mod: str) -> str:
    """go.mod of the wrapper: require the pin, and give each relatively replaced module a version."""
    required = {}
    go_line = "go 1.26"
    relative = []
    for line in pinned_go_mod.splitlines():
        line = line.split("//")[0].rstrip()
        if line.startswith("go "):
            go_line = line
        if (rep := _RELATIVE_REPLACE.match(line)) and not rep.group(2).endswith("FORBIDDEN_DEPENDENCY"):
            relative.append(rep.group(1))
        elif (req := _REQUIRE.match(line)) and "=>" not in line:
            required[req.group(1)] = req.group(2)
    lines = ["module multirev.local/build", "", go_line, "", f"require {recipe.pin.module} {recipe.pin.version}"]
    replaces = []
    for module in relative:
        version = required.get(module, "v0.0.0")
        if version == "v0.0.0":
            version = recipe.staging_version
        if not version:
            raise EnvironmentProblem(f"{recipe.pin.module} replaces {module} with a local path and no version is known")
        replaces.append(f"\t{module} => {module} {version}")
    # A replace line without a version on its left replaces every version the module graph asks for.
    replaces += [f"\t{r.module} => {r.module} {r.version}" for r in recipe.replaces]
    if replaces:
        lines += ["", "replace (", *replaces, ")"]
    return "\n".join(lines) + "\n"


def go_binary_name(package: str) -> str:
    """The file `go build -o DIR/` writes: the last path element, or the one before a major-version
    suffix (go.etcd.io/etcd/server/v3 -> server), as cmd/go's load.DefaultExecName does."""
    parts = package.split("/")
    if len(parts) > 1 and re.fullmatch(r"v[2-9]\d*", parts[-1]):
        return parts[-2]
    return parts[-1]


def is_built(recipe: Recipe, cache: Path) -> bool:
    folder = recipe.folder(cache)
    info = folder / BUILD_INFO
    if not info.is_file():
        return False
    try:
        recorded = json.loads(info.read_text())
    except ValueError:
        return False
    # A changed pin, tag, ldflag or replacement means a new build; anything else reuses the binaries.
    return (recorded.get("module_version") == recipe.pin.version and recorded.get("tags") == list(recipe.tags)
            and recorded.get("ldflags") == list(recipe.ldflags)
            and recorded.get("replaces", []) == replace_record(recipe)
            and all((folder / name).is_file() for name in recipe.packages))


def replace_record(recipe: Recipe) -> list[str]:
    return [f"{r.module} => {r.version}" for r in recipe.replaces]


def build(recipe: Recipe, cache: Path, go: GoTool) -> Path:
    """Build (or reuse) one component; returns its folder."""
    folder = recipe.folder(cache)
    with cache_entry_lock(folder, timeout=BUILD_LOCK_TIMEOUT, what=f"building {recipe.component} {recipe.version}"):
        if is_built(recipe, cache):
            return folder
        started = time.monotonic()
        prefix = f"build-{recipe.component}-{recipe.version}-"
        for stale in cache.glob(f"{prefix}*"):  # left by a build that was killed; we hold the lock
            shutil.rmtree(stale, ignore_errors=True)
        with tempfile.TemporaryDirectory(prefix=prefix, dir=cache) as tmp:
            work = Path(tmp)
            (work / "go.mod").write_text(PROBE_GO_MOD)
            info = _module_info(go, recipe.pin, work, f"{recipe.component} {recipe.version}")
            (work / "go.mod").write_text(wrapper_go_mod(recipe, Path(info["GoMod"]).read_text()))
            imports = "\n".join(f'\t_ "{pkg}"' for pkg in recipe.packages.values())
            (work / "tools.go").write_text(f"//go:build tools\n\npackage tools\n\nimport (\n{imports}\n)\n")
            go.log(f"[multirev] build {recipe.component} {recipe.version}: resolving modules")
            go.output(["mod", "tidy"], cwd=work)
            out = work / "out"
            out.mkdir()
            args = ["build", "-v", "-trimpath", "-o", str(out) + "/", "-ldflags", " ".join(("-s", "-w") +
                                                                                          recipe.ldflags)]
            if recipe.tags:
                args += ["-tags", ",".join(recipe.tags)]
            go.stream([*args, *recipe.packages.values()], work,
                      f"build {recipe.component} {recipe.version} ({', '.join(recipe.packages)})")
            for name, pkg in recipe.packages.items():
                built = out / go_binary_name(pkg)
                if built.name != name:
                    built.rename(out / name)
            copy_data(recipe, Path(info["Dir"]), out / SOURCE_COPY)
            (out / BUILD_INFO).write_text(json.dumps({
                "component": recipe.component, "version": recipe.version, "module": recipe.pin.module,
                "module_version": recipe.pin.version, "module_sum": info.get("Sum"), "tags": list(recipe.tags),
                "ldflags": list(recipe.ldflags), "replaces": replace_record(recipe),
                "go": go.output(["env", "GOVERSION"]).strip(),
                "seconds": round(time.monotonic() - started, 1),
            }, indent=2))
            if folder.exists():
                shutil.rmtree(folder)
            folder.parent.mkdir(parents=True, exist_ok=True)
            out.rename(folder)
        go.log(f"[multirev] build {recipe.component} {recipe.version}: done in {time.monotonic() - started:.0f}s")
    return folder


def copy_data(recipe: Recipe, module_dir: Path, into: Path) -> None:
    """Copy the module files a run reads (read-only in the module cache; the copies are writable)."""
    for relative in recipe.data:
        source, target = module_dir / relative, into / relative
        if not source.exists():
            raise EnvironmentProblem(f"{recipe.pin.module}@{recipe.pin.version} has no {relative}")
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, copy_function=shutil.copyfile, dirs_exist_ok=True)
        else:
            shutil.copyfile(source, target)


def has_data(recipe: Recipe, cache: Path) -> bool:
    return all((recipe.source(cache) / relative).exists() for relative in recipe.data)


def ensure_data(recipe: Recipe, cache: Path) -> None:
    """A folder built before its recipe copied data gets it now, from the module (downloaded if needed),
    rather than a rebuild."""
    if has_data(recipe, cache):
        return
    with cache_entry_lock(recipe.folder(cache), timeout=BUILD_LOCK_TIMEOUT,
                          what=f"copying {recipe.component} {recipe.version} sources"):
        if not has_data(recipe, cache):
            copy_data(recipe, module_source(recipe.pin), recipe.source(cache))


@contextmanager
def _probe_module() -> Iterator[Path]:
    """An empty module to run `go mod download` in (outside a module it would need GOFLAGS=-mod=mod)."""
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "go.mod").write_text(PROBE_GO_MOD)
        yield Path(tmp)


def check_available(istio_versions: list[str], cache: Path | None = None) -> None:
    """Before anything is created: every pinned module not yet built can be downloaded (one line if not)."""
    cache = cache or default_bin_cache()
    missing = [r for r in recipes_for(istio_versions) if not is_built(r, cache)]
    if not missing:
        return
    go = GoTool.find()
    with _probe_module() as probe:
        for recipe in missing:
            _module_info(go, recipe.pin, probe, f"{recipe.component} {recipe.version}")


def module_source(pin: ModulePin) -> Path:
    """Where the Go module cache holds a pinned module's source (downloading and verifying it if needed)."""
    with _probe_module() as probe:
        info = _module_info(GoTool.find(), pin, probe)
    if not info.get("Dir"):
        raise EnvironmentProblem(f"{pin.module}@{pin.version}: the go command gave no source directory")
    return Path(info["Dir"])


def ensure_built(istio_versions: list[str], cache: Path | None = None,
                 log: Callable[[str], None] | None = None) -> dict[str, Path]:
    """Every binary the local backend needs, built unless cached; component/version -> folder."""
    cache = cache or default_bin_cache()
    recipes = recipes_for(istio_versions)
    missing = [r for r in recipes if not is_built(r, cache)]
    folders = {}
    go = GoTool.find(log) if missing else None
    for recipe in recipes:
        if recipe in missing:
            assert go is not None
            folders[f"{recipe.component}/{recipe.version}"] = build(recipe, cache, go)
        else:
            folders[f"{recipe.component}/{recipe.version}"] = recipe.folder(cache)
        ensure_data(recipe, cache)
    return folders


GATEWAY_API_MODULE = "sigs.k8s.io/gateway-api"


def gateway_api_manifest(istio_versions: list[str], cache: Path | None = None) -> Path | None:
    """The Gateway API standard channel's install manifest for these Istio versions (the newer of the modules their
    go.mod require: multirev/istio/gateway_api.py); None where no version is pinned for these minors."""
    module = gateway_api.module_for([IstioVersion.parse(v) for v in istio_versions])
    if module is None or module.version not in gateway_api.RELEASE_SHA256:
        return None
    return module_manifest(module, cache)


def module_manifest(module: gateway_api.GatewayApiModule, cache: Path | None = None) -> Path:
    """The module's standard-install.yaml, built from the verified module as the release script builds it and checked
    against the release's sha256; kept in the cache, so a run needs no Go module cache."""
    cache = cache or default_bin_cache()
    path = cache / "gateway-api" / module.version / "standard-install.yaml"
    if path.exists():
        return path
    with cache_entry_lock(path.parent, timeout=BUILD_LOCK_TIMEOUT, what=f"Gateway API {module.version} CRDs"):
        if not path.exists():
            pin = ModulePin(GATEWAY_API_MODULE, module.version, module.zip_sum, module.source)
            try:
                text = gateway_api.verified_manifest(gateway_api.install_manifest(module_source(pin)), module.version)
            except ValueError as exc:
                raise EnvironmentProblem(str(exc)) from None
            partial = path.with_suffix(".partial")
            partial.parent.mkdir(parents=True, exist_ok=True)
            partial.write_text(text)
            partial.rename(path)
    return path


def main(argv: list[str] | None = None) -> int:
    from multirev.backends.local.pods.envoy import ensure_envoys
    from multirev.profile import builtin_profiles, load_profile

    parser = argparse.ArgumentParser(prog="./run build-local",
                                     description="Build the local backend's binaries into the cache.")
    parser.add_argument("--profile", default="current", help=f"whose Istio versions: {', '.join(builtin_profiles())}")
    parser.add_argument("--istio", action="append", default=[], help="an Istio version to build (repeatable)")
    parser.add_argument("--cache", type=Path, default=None, help=f"default {default_bin_cache()}")
    args = parser.parse_args(argv)
    try:
        versions = args.istio
        if not versions:
            profile = load_profile(args.profile)
            versions = sorted({str(profile.stable.version), str(profile.canary.version)})
        started = time.monotonic()
        for key, folder in ensure_built(versions, args.cache).items():
            print(f"{key}: {folder}")
        for version, binary in ensure_envoys(versions, args.cache or default_bin_cache()).items():
            print(f"envoy for istio/{version}: {binary}")
        crds = gateway_api_manifest(versions, args.cache)
        print(f"Gateway API CRDs: {crds or 'none pinned for these Istio minors'}")
        print(f"[multirev] local binaries ready in {time.monotonic() - started:.0f}s", file=sys.stderr)
    except UsageError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
