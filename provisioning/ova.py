"""Reading an OVA (a tar of an OVF descriptor, its disks and a manifest) without unpacking it."""

from __future__ import annotations

import tarfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from passerelle.provisioning.errors import DeployError

OVF_NS = "http://schemas.dmtf.org/ovf/envelope/1"


@dataclass(frozen=True)
class OvaFile:
    """A file the descriptor references (usually a disk), stored inside the OVA."""

    href: str
    size: int


class OvaPackage:
    def __init__(self, path: Path) -> None:
        self.path = path
        if not path.is_file():
            raise DeployError(f"--ova {path}: no such file")
        try:
            # Kept open for the package's lifetime: disks are streamed from it one by one.
            self._tar = tarfile.open(path, mode="r:")  # noqa: SIM115
        except (tarfile.TarError, OSError) as exc:
            raise DeployError(f"--ova {path}: not an OVA (tar) file: {exc}") from exc
        try:
            self._index()
        except BaseException:
            self._tar.close()
            raise

    def _index(self) -> None:
        path = self.path
        self.members = {m.name: m for m in self._tar.getmembers() if m.isfile()}
        descriptors = [name for name in self.members if name.lower().endswith(".ovf")]
        if len(descriptors) != 1:
            raise DeployError(
                f"--ova {path}: expected one .ovf descriptor inside, found {len(descriptors)}"
            )
        self.descriptor_name = descriptors[0]
        self.descriptor = self._read_text(self.descriptor_name)
        self.files = self._referenced_files()

    def _read_text(self, name: str) -> str:
        stream = self._tar.extractfile(self.members[name])
        assert stream is not None  # members holds regular files only
        return stream.read().decode("utf-8")

    def _referenced_files(self) -> dict[str, OvaFile]:
        try:
            root = ET.fromstring(self.descriptor)
        except ET.ParseError as exc:
            raise DeployError(f"--ova {self.path}: the OVF descriptor is not XML: {exc}") from exc
        files = {}
        for element in root.iter(f"{{{OVF_NS}}}File"):
            href = element.get(f"{{{OVF_NS}}}href", "")
            if href not in self.members:
                raise DeployError(
                    f"--ova {self.path}: the descriptor references {href!r}, missing from the OVA"
                )
            files[href] = OvaFile(href, self.members[href].size)
        return files

    def open(self, href: str) -> IO[bytes]:
        stream = self._tar.extractfile(self.members[href])
        assert stream is not None
        return stream

    def close(self) -> None:
        self._tar.close()

    def __enter__(self) -> OvaPackage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
