"""``passerelle image boot-test``: boot an image under QEMU and check that the appliance serves.

The guest gets QEMU's user-mode network with ``restrict=on``: a private 192.168.1.0/24 that
reaches nothing; only the appliance's ports 443 (management) and 8080 (the test's virtual
service) are forwarded, each to a loopback port. Settings for first boot can be handed over
zero-touch through QEMU's fw_cfg (``--metadata``). The image is never written: QEMU runs on a
temporary copy-on-write overlay.

The full check (``appliance``) proves the first boot and the data plane: health answers 200;
the API reports a serial number, the hostname and address first boot applied and a new 30-day
demo licence; the certificate on 443 is first boot's self-signed one naming that hostname and
address; and a virtual service created through the API carries a request from the host.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from pathlib import Path

from passerelle.firstboot.announce import MARK as FIRSTBOOT_MARK
from passerelle.image.appliance_client import (
    ApplianceAnswerError,
    ApplianceClient,
    pinned_context,
    served_certificate,
)
from passerelle.image.bootchecks import (
    ADMIN_USER,
    SERVICE_PORT,
    CheckFailed,
    Expected,
    announced_facts,
    check_certificate,
    check_first_boot_facts,
    check_virtual_service,
    expected_from,
)
from passerelle.testing.ports import free_port

APPLIANCE_ADDRESS = "192.168.1.101"
MANAGEMENT_PORT = 443
FW_CFG_NAME = "opt/passerelle/metadata"
CHECKS = ("tls", "http", "health", "appliance")
HEALTH_PATH = "/api/v1/health"
OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.ms.fd")  # Secure Boot capable, needs SMM
OVMF_VARS_MS = Path("/usr/share/OVMF/OVMF_VARS_4M.ms.fd")  # Microsoft keys enrolled, SB on
OVMF_CODE_PLAIN = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS_PLAIN = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")
FORMATS = {".vmdk": "vmdk", ".vhdx": "vhdx", ".raw": "raw", ".img": "raw", ".qcow2": "qcow2"}
SECURE_BOOT_LINE = "Secure boot enabled"


class BootTestError(Exception):
    pass


@dataclass(frozen=True)
class BootTestOptions:
    image: Path
    firmware: str = "auto"  # auto | bios | uefi | uefi-secure
    check: str = "appliance"  # tls | http | health | appliance (see CHECKS)
    accept_status: frozenset[int] = frozenset({200, 404})  # for check "http"
    timeout: float = 300.0  # QEMU start to the management API's answer
    port: int = 0  # loopback port forwarded to the management HTTPS port (0: a free one)
    service_port: int = 0  # loopback port forwarded to the test's virtual service
    service_timeout: float = 60.0  # the virtual service's creation to its first answer
    metadata: Path | None = None  # JSON settings for first boot, handed over through fw_cfg
    serial_log: Path | None = None
    cpus: int = 2
    memory_mib: int = 2048


@dataclass
class ApplianceFacts:
    """What the full check established about the booted appliance."""

    address: str
    hostname: str
    serial: str
    licence: str  # e.g. "demo, 30 days left"
    certificate_sha256: str
    admin_password_from: str  # "metadata" or "serial console"
    service_port: int  # loopback port of the virtual service's forward
    service_seconds: float  # the virtual service's creation to the answer through it


@dataclass
class BootTestResult:
    image: str
    firmware: str
    disk_format: str
    port: int
    tls_seconds: float  # QEMU start to the first TLS handshake through the forward
    answer_seconds: float  # QEMU start to the accepted answer
    status: int | None  # HTTP status of GET /api/v1/health (None with --check tls)
    secure_boot: bool | None  # the kernel reported Secure Boot on (None: not UEFI)
    stop_seconds: float
    address: str = APPLIANCE_ADDRESS
    metadata: str | None = None
    appliance: ApplianceFacts | None = None  # only with check "appliance"
    checks_seconds: float = 0.0  # the appliance checks after the first answer

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    def summary(self) -> str:
        where = f"{self.address}:{MANAGEMENT_PORT} via 127.0.0.1:{self.port}"
        lines = [
            f"{self.image}: booted ({self.firmware}, {self.disk_format})"
            + (f" with metadata {self.metadata}" if self.metadata else ""),
            f"  TLS on {where} after {self.tls_seconds:.1f} s",
            f"  accepted answer after {self.answer_seconds:.1f} s"
            + (f" (GET {HEALTH_PATH}: {self.status})" if self.status is not None else ""),
        ]
        if self.secure_boot is not None:
            lines.append(f"  Secure Boot: {'on' if self.secure_boot else 'OFF'}")
        facts = self.appliance
        if facts is not None:
            lines += [
                f"  first boot: serial {facts.serial}, hostname {facts.hostname}, "
                f"address {facts.address}, licence {facts.licence}",
                f"  management certificate: self-signed, SHA-256 {facts.certificate_sha256}",
                f"  logged in as {ADMIN_USER}, password from the {facts.admin_password_from}",
                f"  virtual service on {facts.address}:{SERVICE_PORT} (via 127.0.0.1:"
                f"{facts.service_port}) answered {facts.service_seconds:.1f} s after its creation",
                f"  appliance checks took {self.checks_seconds:.1f} s",
            ]
        lines.append(f"  stopped in {self.stop_seconds:.1f} s")
        return "\n".join(lines)


def firmware_for(image: Path, firmware: str) -> str:
    if firmware != "auto":
        return firmware
    # A VHDX goes to Hyper-V generation 2 (UEFI, Secure Boot); the OVA's VMware VM is BIOS.
    return "uefi-secure" if image.suffix.lower() == ".vhdx" else "bios"


def disk_from(image: Path, work: Path) -> tuple[Path, str]:
    """The disk QEMU reads and its format; an OVA's VMDK is extracted first."""
    if not image.is_file():
        raise BootTestError(f"{image}: no such file")
    suffix = image.suffix.lower()
    if suffix == ".ova":
        with tarfile.open(image) as archive:
            members = [m for m in archive.getmembers() if m.name.lower().endswith(".vmdk")]
            if not members or not members[0].isfile():
                raise BootTestError(f"{image}: no .vmdk member in the OVA")
            target = work / Path(members[0].name).name
            source = archive.extractfile(members[0])
            assert source is not None
            with source, target.open("wb") as out:
                shutil.copyfileobj(source, out, 1 << 20)
        return target, "vmdk"
    if suffix not in FORMATS:
        raise BootTestError(f"{image}: expected .ova, .vmdk, .vhdx, .raw or .qcow2")
    return image.resolve(), FORMATS[suffix]


def _controller(firmware: str) -> str:
    # VMware's paravirtual SCSI under BIOS, as the OVA declares it. OVMF has no PVSCSI driver,
    # so UEFI boots use virtio-scsi, standing in for Hyper-V's synthetic SCSI controller.
    return "pvscsi" if firmware == "bios" else "virtio-scsi-pci"


def qemu_command(
    overlay: Path,
    firmware: str,
    forwards: dict[int, int],
    work: Path,
    serial: Path,
    options: BootTestOptions,
    address: str = APPLIANCE_ADDRESS,
    metadata: Path | None = None,
) -> list[str]:
    """``forwards`` maps loopback ports to the guest ports at ``address`` they reach."""
    netdev = "user,id=n0,net=192.168.1.0/24,host=192.168.1.2,restrict=on" + "".join(
        f",hostfwd=tcp:127.0.0.1:{host}-{address}:{guest}" for host, guest in forwards.items()
    )
    command = [
        "qemu-system-x86_64",
        "-accel", "tcg",
        "-m", str(options.memory_mib),
        "-smp", str(options.cpus),
        "-nodefaults",
        "-display", "none",
        "-device", "VGA",
        "-serial", f"file:{serial}",
        "-pidfile", str(work / "qemu.pid"),
        "-device", f"{_controller(firmware)},id=scsi0",
        "-drive", f"file={overlay},if=none,id=d0,format=qcow2,cache=unsafe",
        "-device", "scsi-hd,drive=d0,bus=scsi0.0,bootindex=0",
        "-netdev", netdev,
        "-device", "vmxnet3,netdev=n0",
    ]  # fmt: skip
    if metadata is not None:
        # fw_cfg splits the option on commas: a path with one would be misread
        if "," in str(metadata):
            raise BootTestError(f"{metadata}: QEMU cannot take a fw_cfg file with ',' in its path")
        command += ["-fw_cfg", f"name={FW_CFG_NAME},file={metadata}"]
    if firmware == "bios":
        return [*command, "-machine", "pc"]
    code, template = (
        (OVMF_CODE, OVMF_VARS_MS)
        if firmware == "uefi-secure"
        else (OVMF_CODE_PLAIN, OVMF_VARS_PLAIN)
    )
    for path in (code, template):
        if not path.is_file():
            raise BootTestError(f"{path} not found: apt-get install ovmf")
    variables = work / "OVMF_VARS.fd"
    shutil.copyfile(template, variables)
    return [
        *command,
        "-machine", "q35,smm=on",
        "-global", "driver=cfi.pflash01,property=secure,value=on",
        "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={code}",
        "-drive", f"if=pflash,format=raw,unit=1,file={variables}",
    ]  # fmt: skip


def probe(
    port: int, check: str, timeout: float = 5.0, address: str = APPLIANCE_ADDRESS
) -> tuple[bool, int | None]:
    """(TLS handshake done, HTTP status or None). Raises OSError when nothing answers yet."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # judged later, by the appliance checks
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    with raw, context.wrap_socket(raw, server_hostname=address) as tls:
        if check == "tls":
            return True, None
        request = (
            f"GET {HEALTH_PATH} HTTP/1.1\r\nHost: {address}\r\n"
            "Accept: application/json\r\nConnection: close\r\n\r\n"
        )
        tls.sendall(request.encode())
        head = b""
        while b"\r\n" not in head and len(head) < 8192:
            chunk = tls.recv(4096)
            if not chunk:
                break
            head += chunk
    parts = head.split(b"\r\n", 1)[0].split()
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise ConnectionError(f"not an HTTP answer over TLS: {head[:60]!r}")
    return True, int(parts[1])


@contextmanager
def running_qemu(command: list[str], work: Path) -> Iterator[subprocess.Popen[bytes]]:
    log = (work / "qemu.log").open("wb")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=work)
    try:
        yield process
    finally:
        stop_qemu(process, work / "qemu.pid")
        log.close()


def stop_qemu(process: subprocess.Popen[bytes], pidfile: Path) -> None:
    """Stops QEMU by the PID it wrote, then reaps our child."""
    pid = None
    with suppress(OSError, ValueError):
        pid = int(pidfile.read_text().strip())
    if pid is not None and process.poll() is None:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _tail(path: Path, lines: int = 25) -> str:
    if not path.is_file():
        return "(nothing)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def boot_test(options: BootTestOptions) -> BootTestResult:
    if options.check not in CHECKS:
        raise BootTestError(f"check {options.check!r}: expected one of {', '.join(CHECKS)}")
    try:
        expected = expected_from(options.metadata)
    except CheckFailed as exc:
        raise BootTestError(f"metadata: {exc}") from None
    if shutil.which("qemu-system-x86_64") is None or shutil.which("qemu-img") is None:
        raise BootTestError("QEMU not found: apt-get install qemu-system-x86 qemu-utils")
    firmware = firmware_for(options.image, options.firmware)
    port = options.port or free_port()
    forwards = {port: MANAGEMENT_PORT}
    if options.check == "appliance":
        service_port = options.service_port or free_port()
        if service_port == port:
            raise BootTestError(f"--port and --service-port are both {port}")
        forwards[service_port] = SERVICE_PORT
    with tempfile.TemporaryDirectory(prefix="passerelle-boot-") as tmp:
        work = Path(tmp)
        disk, disk_format = disk_from(options.image, work)
        overlay = work / "overlay.qcow2"
        _create_overlay(options.image, disk, disk_format, overlay)
        metadata = None
        if options.metadata is not None:
            # QEMU reads the file when it starts; a private copy cannot change under it
            metadata = work / "metadata.json"
            shutil.copyfile(options.metadata, metadata)
        serial = work / "serial.log"
        command = qemu_command(
            overlay, firmware, forwards, work, serial, options, expected.address, metadata
        )
        facts: ApplianceFacts | None = None
        checks_seconds = 0.0
        try:
            with running_qemu(command, work) as process:
                started = time.monotonic()
                tls_at, status = _wait_for_answer(
                    process, port, options, started, work, serial, expected.address
                )
                answered = time.monotonic() - started
                if options.check == "appliance":
                    facts = _check_appliance(port, forwards, expected, serial, options)
                    checks_seconds = time.monotonic() - started - answered
                secure = (
                    SECURE_BOOT_LINE in serial.read_text(errors="replace")
                    if firmware != "bios"
                    else None
                )
                stop_started = time.monotonic()
            stop_seconds = time.monotonic() - stop_started
        finally:
            if options.serial_log is not None and serial.is_file():
                shutil.copyfile(serial, options.serial_log)
        if firmware == "uefi-secure" and not secure:
            raise BootTestError(
                f"{options.image} booted, but the kernel did not report Secure Boot on:\n"
                f"{_tail(serial)}"
            )
    return BootTestResult(
        image=str(options.image),
        firmware=firmware,
        disk_format=disk_format,
        port=port,
        tls_seconds=round(tls_at, 1),
        answer_seconds=round(answered, 1),
        status=status,
        secure_boot=secure,
        stop_seconds=round(stop_seconds, 1),
        address=expected.address,
        metadata=str(options.metadata) if options.metadata else None,
        appliance=facts,
        checks_seconds=round(checks_seconds, 1),
    )


def _create_overlay(image: Path, disk: Path, disk_format: str, overlay: Path) -> None:
    command = ["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(disk), "-F", disk_format]
    created = subprocess.run([*command, str(overlay)], capture_output=True, text=True)
    if created.returncode != 0:
        raise BootTestError(f"{image}: not a readable {disk_format} disk: {created.stderr.strip()}")


def _check_appliance(
    port: int, forwards: dict[int, int], expected: Expected, serial: Path, options: BootTestOptions
) -> ApplianceFacts:
    service_port = next(host for host, guest in forwards.items() if guest == SERVICE_PORT)
    try:
        der = served_certificate(port, expected.address)
        announced = _wait_for_announcement(serial)
        if "certificate-sha256" not in announced:
            raise CheckFailed(
                f"first boot printed no summary ({FIRSTBOOT_MARK} lines) on the serial console"
            )
        password, password_from = expected.admin_password, "metadata"
        if password is None:
            password, password_from = announced.get("admin-password"), "serial console"
        if not password:
            raise CheckFailed(
                "no admin password: none in the metadata, and first boot printed none on the "
                f"serial console ({FIRSTBOOT_MARK} admin-password)"
            )
        certificate = check_certificate(der, expected, announced["certificate-sha256"])
        client = ApplianceClient(port, expected.address, pinned_context(der), ADMIN_USER, password)
        first_boot = check_first_boot_facts(client, expected, announced)
        service_seconds = check_virtual_service(
            client, service_port, expected.address, options.service_timeout
        )
    except (CheckFailed, ApplianceAnswerError, OSError) as exc:
        raise BootTestError(f"{exc}\nserial console:\n{_tail(serial)}") from None
    return ApplianceFacts(
        address=first_boot.address,
        hostname=first_boot.hostname,
        serial=first_boot.serial,
        licence=f"{first_boot.licence_kind}, {first_boot.licence_days_left} days left",
        certificate_sha256=certificate.sha256,
        admin_password_from=password_from,
        service_port=service_port,
        service_seconds=round(service_seconds, 1),
    )


def _wait_for_announcement(serial: Path, timeout: float = 30.0) -> dict[str, str]:
    """First boot runs before the engine starts, so its summary is normally there already."""
    deadline = time.monotonic() + timeout
    while True:
        announced = announced_facts(serial)
        if "certificate-sha256" in announced or time.monotonic() > deadline:
            return announced
        time.sleep(0.5)


def _wait_for_answer(
    process: subprocess.Popen[bytes],
    port: int,
    options: BootTestOptions,
    started: float,
    work: Path,
    serial: Path,
    address: str = APPLIANCE_ADDRESS,
) -> tuple[float, int | None]:
    tls_at: float | None = None
    last_problem = "no answer"
    check = options.check
    while time.monotonic() - started < options.timeout:
        if process.poll() is not None:
            raise BootTestError(
                f"QEMU exited with status {process.returncode}:\n{_tail(work / 'qemu.log')}\n"
                f"serial console:\n{_tail(serial)}"
            )
        try:
            handshake, status = probe(port, check, address=address)
        except (OSError, ssl.SSLError) as exc:
            last_problem = str(exc) or type(exc).__name__
            time.sleep(1.0)
            continue
        if handshake and tls_at is None:
            tls_at = time.monotonic() - started
        if check == "tls":
            return tls_at or 0.0, None
        wanted = options.accept_status if check == "http" else {200}
        if status in wanted:
            return tls_at or 0.0, status
        last_problem = f"GET {HEALTH_PATH} answered {status}"
        time.sleep(1.0)
    raise BootTestError(
        f"no accepted answer within {options.timeout:.0f} s ({last_problem}); serial console:\n"
        f"{_tail(serial)}"
    )
