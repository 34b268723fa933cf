"""Plays a Hyper-V host behind the WS-Management fixture: reads the parameters the generated
script assigns (parsing PowerShell's literal syntax), keeps VMs, switches and KVP items,
and answers as the real scripts would: JSON on stdout, or an error record and exit 1."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

QUOTES = "'\u2018\u2019\u201a\u201b"


class LiteralParser:
    """Reads back the literals provisioning.hyperv.powershell writes."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def parse(self) -> Any:
        value = self.value()
        assert self.pos == len(self.text), f"trailing text: {self.text[self.pos :]!r}"
        return value

    def _skip(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in " ;,":
            self.pos += 1

    def value(self) -> Any:
        self._skip()
        text = self.text
        if text[self.pos] in QUOTES:
            self.pos += 1
            out = []
            while True:
                c = text[self.pos]
                if c in QUOTES:
                    if self.pos + 1 < len(text) and text[self.pos + 1] in QUOTES:
                        out.append(c)
                        self.pos += 2
                        continue
                    self.pos += 1
                    return "".join(out)
                out.append(c)
                self.pos += 1
        for word, result in (("$null", None), ("$true", True), ("$false", False)):
            if text.startswith(word, self.pos):
                self.pos += len(word)
                return result
        if text.startswith("@(", self.pos):
            self.pos += 2
            items = []
            while (self._skip(), text[self.pos])[1] != ")":
                items.append(self.value())
            self.pos += 1
            return items
        if text.startswith("[ordered]@{", self.pos):
            self.pos += len("[ordered]@{")
            mapping = {}
            while (self._skip(), text[self.pos])[1] != "}":
                key = self.value()
                self._skip()
                assert text[self.pos] == "=", text[self.pos :]
                self.pos += 1
                mapping[key] = self.value()
            self.pos += 1
            return mapping
        match = re.compile(r"-?\d+").match(text, self.pos)
        assert match, f"not a literal: {text[self.pos :]!r}"
        self.pos = match.end()
        return int(match.group())


def script_parts(script: str) -> tuple[str, dict[str, Any], str]:
    """(step name, parameters, body) of a generated script."""
    head, _, rest = script.partition("\ntry {\n")
    params: dict[str, Any] = {}
    for line in head.splitlines():
        match = re.match(r"\$([A-Za-z][A-Za-z0-9]*) = (.*)\Z", line, re.S)
        if (
            match
            and not line.startswith("$ErrorActionPreference")
            and not line.startswith("$ProgressPreference")
        ):
            params[match.group(1)] = LiteralParser(match.group(2)).parse()
    step = re.search(r"# passerelle: (\S+)", rest)
    return (step.group(1) if step else "?"), params, "try {\n" + rest


@dataclass
class FakeVm:
    name: str
    notes: str = ""
    state: str = "Off"
    kvp: dict[str, str] = field(default_factory=dict)
    created: dict[str, Any] = field(default_factory=dict)


class FakeHyperV:
    def __init__(self, switches: list[str], sources: list[str]) -> None:
        self.switches = switches
        self.sources = sources
        self.vms: dict[str, FakeVm] = {}
        self.scripts: list[tuple[str, dict[str, Any], str]] = []
        self.fail: dict[str, str] = {}  # step -> error message to answer with

    def __call__(self, script: str) -> tuple[str, str, int]:
        step, params, _body = script_parts(script)
        self.scripts.append((step, params, script))
        if step in self.fail:
            record = {"message": self.fail[step], "category": "InvalidOperation", "error_id": "X"}
            return "", json.dumps(record), 1
        try:
            result = getattr(self, "step_" + step.replace("-", "_"))(**params)
        except LookupError as exc:
            return "", json.dumps({"message": str(exc.args[0])}), 1
        return json.dumps(result), "", 0

    def steps(self) -> list[str]:
        return [s for s, _, _ in self.scripts]

    def step_inspect(self, VmNames: list[str]) -> dict[str, Any]:
        vms = []
        for name in VmNames:
            vm = self.vms.get(name)
            if vm is None:
                vms.append({"name": name, "exists": False})
            else:
                vms.append(
                    {
                        "name": name,
                        "exists": True,
                        "count": 1,
                        "notes": vm.notes,
                        "state": vm.state,
                        "kvp": vm.kvp,
                    }
                )
        return {"host": "HV1", "vm_path": "C:\\VMs", "switches": self.switches, "vms": vms}

    def step_check_source(self, Source: str, **_: Any) -> dict[str, Any]:
        if Source not in self.sources:
            raise LookupError(f"the host cannot read the VHDX {Source}")
        return {"source": Source, "size": 1 << 20}

    def step_create(self, VmName: str, **params: Any) -> dict[str, Any]:
        if VmName in self.vms:
            raise LookupError(f"a VM named '{VmName}' already exists")
        self.vms[VmName] = FakeVm(VmName, notes=params["Marker"], created=params)
        return {"name": VmName, "id": "0", "disk": "x.vhdx", "copied": True}

    def step_set_kvp(self, VmName: str, Items: dict[str, str], Remove: list[str]) -> Any:
        vm = self.vms[VmName]
        for key in Remove:
            vm.kvp.pop(key, None)
        vm.kvp.update(Items)
        return {"name": VmName, "keys": list(Items)}

    def step_start(self, VmName: str) -> dict[str, Any]:
        self.vms[VmName].state = "Running"
        return {"name": VmName, "state": "Running"}

    def step_addresses(self, VmName: str) -> dict[str, Any]:
        vm = self.vms[VmName]
        ip = vm.kvp.get("guestinfo.passerelle.ip", "").split("/")[0]
        # The guest's KVP daemon reports the address once the appliance runs.
        return {"name": VmName, "addresses": [ip, "fe80::1"] if vm.state == "Running" else []}
