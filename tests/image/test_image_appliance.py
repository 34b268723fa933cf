"""Appliance tier: build the image (layer cache warm after the first run) and boot it.

Needs root and the Debian packages packer, mmdebstrap, qemu-system-x86, qemu-utils, ovmf,
syslinux, syslinux-common, mtools, dosfstools. Extra build variables can be given as JSON in
$PASSERELLE_IMAGE_TEST_VARS, e.g. '{"extra_python_requirements": ["flask"]}'.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from passerelle.image.boottest import BootTestOptions, boot_test
from passerelle.image.build import TOOLS, BuildOptions, BuildResult, build_image

pytestmark = [
    pytest.mark.appliance,
    pytest.mark.timeout(1800),
    pytest.mark.skipif(os.geteuid() != 0, reason="the image build needs root"),
    pytest.mark.skipif(
        any(shutil.which(tool) is None for tool in TOOLS), reason="image build tools missing"
    ),
]
OVA_LIMIT = 200 * 2**20


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> BuildResult:
    variables = json.loads(os.environ.get("PASSERELLE_IMAGE_TEST_VARS", "{}"))
    output = tmp_path_factory.mktemp("image")
    return build_image(BuildOptions(output_dir=output, variables=variables))


def test_build_publishes_artifacts_with_checksums(image: BuildResult) -> None:
    names = sorted(p.name for p in image.ova.parent.iterdir())
    stem = image.ova.stem
    assert names == sorted(
        [f"{stem}.ova", f"{stem}.vhdx", f"{stem}.raw", f"{stem}.SHA256SUMS"]
        + [f"{stem}.{ext}.sha256" for ext in ("ova", "vhdx", "raw")]
    )  # nothing else: no work directory or partial file left behind
    check = subprocess.run(
        ["sha256sum", "-c", image.checksums.name],
        cwd=image.ova.parent,
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert image.ova.stat().st_size <= OVA_LIMIT
    with tarfile.open(image.ova) as archive:
        names = archive.getnames()
    assert names[0].endswith(".ovf") and names[1].endswith(".mf") and names[2].endswith(".vmdk")
    vhdx = subprocess.run(["qemu-img", "check", "-f", "vhdx", str(image.vhdx)], capture_output=True)
    assert vhdx.returncode == 0, vhdx.stdout + vhdx.stderr


def test_cot_reads_the_ova(image: BuildResult) -> None:
    pytest.importorskip("COT")
    cot = Path(sys.executable).parent / "cot"
    result = subprocess.run(
        [str(cot), "--force", "info", str(image.ova)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert re.search(r"SCSI device types:\s+VirtualSCSI\n", result.stdout)
    assert re.search(r"Ethernet device types:\s+VmxNet3\n", result.stdout)
    assert re.search(r"None \(default\)\s+2\s+2 GiB\s+1\s", result.stdout)


def test_ova_boots_bios_on_pvscsi_and_vmxnet3_and_serves_https(image: BuildResult) -> None:
    result = boot_test(BootTestOptions(image=image.ova, firmware="bios", timeout=420))
    print(result.summary())
    assert result.firmware == "bios" and result.disk_format == "vmdk"
    assert result.status in (200, 404)


def test_vhdx_boots_uefi_with_secure_boot_and_serves_https(image: BuildResult) -> None:
    result = boot_test(BootTestOptions(image=image.vhdx, firmware="uefi-secure", timeout=420))
    print(result.summary())
    assert result.secure_boot is True
    assert result.status in (200, 404)
