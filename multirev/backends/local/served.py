"""Which `istio.io/istio` versions the module proxy serves here, and which replacements each needs.

`./run probe-modules` asks the module proxy (through the Go command, checksum database on) about every Istio
pin and candidate: is the version itself served, which modules of its graph are refused, and is each
replacement a pin names served. The answers are recorded in served-answers.json next to this file, with the
day they were given. The build self-test reads that record, network-free, and holds every pin to it: a pin
marked served has each refused dependency replaced by a served version, a refused pin is marked so, and no
replacement is left without a refusal it answers. Adopting a newer commit on either branch is then one
changed pin, one probe and one recorded file.
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import subprocess
import sys
from pathlib import Path

from multirev.backends.local.build import PROBE_GO_MOD, GoTool, _module_info, _probe_module
from multirev.backends.local.pins import ISTIO, IstioPin, ModulePin
from multirev.errors import EnvironmentProblem

ANSWERS = Path(__file__).with_name("served-answers.json")
# Versions probed besides the pins: a newer commit worth adopting is added here first.
CANDIDATES = {
    "master at b01690e6db7d (early 1.31-dev)": "v0.0.0-20260423205519-b01690e6db7d",
}


def reason(error: str) -> str:
    """The refusal without the proxy's or checksum database's address: '403 Forbidden: This module version ...'."""
    status = re.search(r"\b(\d{3} [A-Z][A-Za-z]+(?: [A-Z][A-Za-z]+)*)", error)
    detail = re.search(r"server response:\s*([^;\n]+)", error)
    if status is None:
        return " ".join(re.sub(r"https?://\S+", "<address>", error).split())[-200:]
    return status.group(1) + (f": {detail.group(1).strip()}" if detail else "")


def refused_in_graph(go: GoTool, module: str, version: str) -> dict[str, str]:
    """module@version -> why, for every module of the graph the proxy refuses (`go list -m -e -json all`)."""
    with _probe_module() as probe:
        (probe / "go.mod").write_text(PROBE_GO_MOD + f"\nrequire {module} {version}\n")
        proc = subprocess.run([go.go, "list", "-m", "-e", "-json", "all"], cwd=probe, capture_output=True,
                              text=True, env=go.env)
    decoder, text, at, refused = json.JSONDecoder(), proc.stdout, 0, {}
    while (at := _skip_space(text, at)) < len(text):
        entry, at = decoder.raw_decode(text, at)
        if entry.get("Error"):
            refused[f"{entry['Path']}@{entry.get('Version', '')}"] = reason(entry["Error"]["Err"])
    if proc.returncode != 0 and not refused:
        raise EnvironmentProblem(f"go list -m all for {module}@{version} failed: {proc.stderr.strip()[-300:]}")
    return refused


def _skip_space(text: str, at: int) -> int:
    while at < len(text) and text[at].isspace():
        at += 1
    return at


def answer_for(go: GoTool, name: str, module: str, version: str, replaces: list[ModulePin]) -> dict:
    with _probe_module() as probe:
        try:
            _module_info(go, ModulePin(module, version, "", ""), probe)
        except EnvironmentProblem as refusal:
            return {"name": name, "served": False, "why": reason(str(refusal))}
        replacements = {}
        for pin in replaces:
            try:
                _module_info(go, pin, probe)
                replacements[f"{pin.module}@{pin.version}"] = "served"
            except EnvironmentProblem as refusal:
                replacements[f"{pin.module}@{pin.version}"] = reason(str(refusal))
    return {"name": name, "served": True, "refused_dependencies": refused_in_graph(go, module, version),
            "replacements": replacements}


def record(go: GoTool) -> dict:
    answers = {}
    for pin in ISTIO.values():
        replaces = [ModulePin(r.module, r.version, "", "") for r in pin.replaces]
        answers[pin.pin.version] = answer_for(go, pin.version, pin.pin.module, pin.pin.version, replaces)
    for name, version in CANDIDATES.items():
        answers[version] = answer_for(go, name, "istio.io/istio", version, [])
    return {"recorded": datetime.date.today().isoformat(), "go": go.output(["env", "GOVERSION"]).strip(),
            "answers": answers}


def load() -> dict:
    return json.loads(ANSWERS.read_text())


def problems(pin: IstioPin, answers: dict) -> list[str]:
    """How a pin disagrees with what the module proxy answered (empty when it is consistent)."""
    answer = answers["answers"].get(pin.pin.version)
    if answer is None:
        return [f"{pin.version}: no recorded answer for istio.io/istio@{pin.pin.version} (./run probe-modules)"]
    if not answer["served"]:
        return [] if not pin.served_here else [f"{pin.version}: marked served, but the proxy answered "
                                               f"{answer['why']}"]
    if not pin.served_here:
        return [f"{pin.version}: marked refused, but the proxy serves it"]
    found = []
    replaced = {r.module: r for r in pin.replaces}
    for dependency, why in answer["refused_dependencies"].items():
        module = dependency.rsplit("@", 1)[0]
        if module not in replaced:
            found.append(f"{pin.version}: {dependency} is refused ({why}) and the pin does not replace it")
    refused_modules = {d.rsplit("@", 1)[0] for d in answer["refused_dependencies"]}
    for replacement in pin.replaces:
        key = f"{replacement.module}@{replacement.version}"
        if replacement.module not in refused_modules:
            found.append(f"{pin.version}: replaces {replacement.module}, which the proxy serves as required")
        if answer["replacements"].get(key) != "served":
            found.append(f"{pin.version}: its replacement {key} is not served "
                         f"({answer['replacements'].get(key, 'not probed')})")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="./run probe-modules", description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=ANSWERS)
    args = parser.parse_args(argv)
    answers = record(GoTool.find())
    args.output.write_text(json.dumps(answers, indent=2, sort_keys=True) + "\n")
    for version, answer in answers["answers"].items():
        state = ("served" if not answer.get("refused_dependencies") else
                 f"served, {len(answer['refused_dependencies'])} dependencies refused") if answer["served"] \
            else f"refused: {answer['why']}"
        print(f"{answer['name']} (istio.io/istio@{version}): {state}")
    print(f"recorded in {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
