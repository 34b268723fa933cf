"""``passerelle image build``: from the repository to OVA, VHDX and raw disk with checksums."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.metadata import version as installed_version
from pathlib import Path
from typing import Any

from passerelle.image import convert, disk, ovf, packer, rootfs, wheels
from passerelle.image.cache import LayerCache, cache_dir
from passerelle.image.steps import Steps
from passerelle.image.variables import PACKER_DIR, load_variables, resolve

# tool -> Debian package that provides it
TOOLS = {
    "mmdebstrap": "mmdebstrap",
    "packer": "packer",
    "qemu-system-x86_64": "qemu-system-x86",
    "qemu-img": "qemu-utils",
    "mkfs.ext4": "e2fsprogs",
    "mkfs.vfat": "dosfstools",
    "mcopy": "mtools",
    "syslinux": "syslinux",
    "sfdisk": "fdisk",
    "systemctl": "systemd",
}


class BuildError(Exception):
    """The build cannot start (wrong host, missing tool, bad variable)."""


@dataclass
class BuildOptions:
    output_dir: Path
    variables: dict[str, Any] = field(default_factory=dict)  # overrides of packer/*.pkr.hcl
    cache: Path = field(default_factory=cache_dir)
    repo: Path = PACKER_DIR.parent
    keep_work: bool = False


@dataclass
class BuildResult:
    ova: Path
    vhdx: Path
    raw: Path
    checksums: Path
    timings: dict[str, float]
    cached_layers: list[str]


def check_host() -> None:
    if os.geteuid() != 0:
        raise BuildError("the image build must run as root (mmdebstrap and chroot need it)")
    missing = [f"{tool} ({package})" for tool, package in TOOLS.items() if not shutil.which(tool)]
    if missing:
        raise BuildError("missing tools, apt-get install them: " + ", ".join(missing))


def resolve_variables(options: BuildOptions, work: Path) -> dict[str, Any]:
    values: dict[str, Any] = {"version": installed_version("passerelle")}
    values.update(options.variables)
    values.setdefault("source_disk", str(work / "assembled.raw"))
    values.setdefault("output_directory", str(work / "sealed"))
    return resolve(load_variables(), values)


def build_image(options: BuildOptions, steps: Steps | None = None) -> BuildResult:
    check_host()
    output_dir = options.output_dir.resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    # Work beside the outputs so that publishing is a rename, never a half-written copy.
    work = output_dir / f".build-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    log = work / "build.log"
    steps = steps or Steps(total=9)
    cache = LayerCache(options.cache)
    cached: list[str] = []
    try:
        with steps.step("Check variables and Packer template"):
            resolved = resolve_variables(options, work)
            packer.validate(resolved, log)
        name = f"passerelle-{resolved['version']}"
        with steps.step("Build the Passerelle wheel and fetch its dependencies"):
            wheel_files = wheels.build_wheels(
                options.repo, work / "wheels", log, resolved["extra_python_requirements"]
            )
            wheel_hash = wheels.wheel_set_hash(wheel_files)
            steps.note(f"{len(wheel_files)} wheels, set {wheel_hash[:12]}")
        with steps.step("Debian root filesystem (mmdebstrap)"):
            base, hit = rootfs.build_base(resolved, cache, log)
            steps.note(f"{'from cache' if hit else 'built'}: {base}")
            if hit:
                cached.append("base")
        with steps.step("Passerelle virtualenv layer"):
            venv, hit = rootfs.build_venv(
                base,
                wheel_files,
                wheel_hash,
                resolved["extra_python_requirements"],
                cache,
                work,
                log,
            )
            steps.note(f"{'from cache' if hit else 'built'}: {venv}")
            if hit:
                cached.append("venv")
        with steps.step("Assemble the GPT disk (ESP + ext4 root, BIOS and UEFI boot)"):
            assemble(resolved, base, venv, work, log)
        with steps.step("Sealing boot under Packer (QEMU, TCG)"):
            sealed = packer.seal(resolved, log)
        with steps.step("Stream-optimized VMDK and OVA"):
            ova = package_ova(resolved, sealed, work / "publish", log)
        with steps.step("Dynamic VHDX"):
            vhdx = work / "publish" / f"{name}.vhdx"
            convert.to_vhdx(sealed, vhdx, log)
        with steps.step("Checksums and publish"):
            raw = work / "publish" / f"{name}.raw"
            os.replace(sealed, raw)
            result = publish(work / "publish", output_dir, [ova, vhdx, raw], name)
            result.timings = steps.timings
            result.cached_layers = cached
    except BaseException:
        steps.console.print(
            f"build log: {log}" if options.keep_work else f"build log (tail):\n{_tail(log)}"
        )
        raise
    finally:
        if not options.keep_work:
            shutil.rmtree(work, ignore_errors=True)
    return result


def _tail(log: Path, lines: int = 20) -> str:
    if not log.is_file():
        return "(empty)"
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def assemble(resolved: Mapping[str, Any], base: Path, venv: Path, work: Path, log: Path) -> None:
    ids = disk.DiskIds.new()
    root = work / "root"
    rootfs.extract(base, root)
    rootfs.extract(venv, root)
    rootfs.apply_overlay(root, ids.root_uuid, ids.esp_uuid, log)
    boot = rootfs.boot_files(root)
    esp_mib, disk_mib = int(resolved["esp_size_mib"]), int(resolved["disk_size_mib"])
    esp, ext4 = work / "esp.img", work / "root.img"
    disk.build_esp(esp, esp_mib, boot, ids, resolved["kernel_cmdline"], log)
    disk.build_root_fs(ext4, disk.root_size_mib(disk_mib, esp_mib), root, ids, log)
    shutil.rmtree(root)
    disk.assemble(Path(resolved["source_disk"]), disk_mib, esp_mib, esp, ext4, ids, log)
    esp.unlink()
    ext4.unlink()


def package_ova(resolved: Mapping[str, Any], sealed: Path, publish_dir: Path, log: Path) -> Path:
    name = f"passerelle-{resolved['version']}"
    members = publish_dir / "ova"
    members.mkdir(parents=True)
    vmdk = members / f"{name}-disk1.vmdk"
    convert.to_vmdk(sealed, vmdk, log)
    appliance = ovf.Appliance(
        name=name,
        version=resolved["version"],
        cpus=int(resolved["cpus"]),
        memory_mib=int(resolved["memory_mib"]),
        disk_file=vmdk.name,
        disk_file_size=vmdk.stat().st_size,
        disk_capacity_bytes=convert.virtual_size(vmdk),
    )
    descriptor = members / f"{name}.ovf"
    descriptor.write_bytes(ovf.descriptor(appliance))
    manifest = members / f"{name}.mf"
    manifest.write_text(ovf.manifest([descriptor, vmdk]))
    ova = publish_dir / f"{name}.ova"
    ovf.write_ova(ova, descriptor, manifest, [vmdk])
    shutil.rmtree(members)
    return ova


def publish(staging: Path, output_dir: Path, artifacts: list[Path], name: str) -> BuildResult:
    lines = []
    for artifact in artifacts:
        line = convert.checksum_line(artifact)
        (staging / f"{artifact.name}.sha256").write_text(line)
        lines.append(line)
    sums = staging / f"{name}.SHA256SUMS"
    sums.write_text("".join(lines))
    published = {}
    for path in [*artifacts, *(staging / f"{a.name}.sha256" for a in artifacts), sums]:
        target = output_dir / path.name
        os.replace(path, target)
        published[path.name] = target
    return BuildResult(
        ova=published[artifacts[0].name],
        vhdx=published[artifacts[1].name],
        raw=published[artifacts[2].name],
        checksums=published[sums.name],
        timings={},
        cached_layers=[],
    )


def elapsed_since(started: float) -> str:
    return f"{time.monotonic() - started:.0f} s"
