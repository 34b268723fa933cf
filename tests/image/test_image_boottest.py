"""The boot test's QEMU command line and its HTTPS check, against real loopback servers."""

import json
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from passerelle.image.boottest import (
    BootTestError,
    BootTestOptions,
    boot_test,
    firmware_for,
    probe,
    qemu_command,
)


def test_firmware_follows_the_hypervisor_of_the_format() -> None:
    assert firmware_for(Path("a.vhdx"), "auto") == "uefi-secure"
    assert firmware_for(Path("a.ova"), "auto") == "bios"
    assert firmware_for(Path("a.vmdk"), "uefi") == "uefi"


def _netdevs(command: list[str]) -> list[str]:
    return [command[i + 1] for i, arg in enumerate(command) if arg == "-netdev"]


def test_the_guest_network_is_restricted_with_loopback_forwards(tmp_path: Path) -> None:
    options = BootTestOptions(image=tmp_path / "x.ova")
    for firmware in ("bios", "uefi-secure"):
        command = qemu_command(
            tmp_path / "o.qcow2", firmware, {4431: 443}, tmp_path, tmp_path / "s", options
        )
        assert _netdevs(command) == [
            "user,id=n0,net=192.168.1.0/24,host=192.168.1.2,restrict=on,"
            "hostfwd=tcp:127.0.0.1:4431-192.168.1.101:443"
        ]
        assert "-nic" not in command and "-net" not in command and "-fw_cfg" not in command
        assert command[command.index("-accel") + 1] == "tcg"
        assert "vmxnet3,netdev=n0" in command
        controller = "pvscsi" if firmware == "bios" else "virtio-scsi-pci"
        assert f"{controller},id=scsi0" in command
    assert any("OVMF_CODE_4M.ms.fd" in arg for arg in command)
    assert (tmp_path / "OVMF_VARS.fd").is_file()  # a copy: the firmware's vars stay pristine


def test_metadata_goes_through_fw_cfg_and_the_forwards_follow_its_address(
    tmp_path: Path,
) -> None:
    options = BootTestOptions(image=tmp_path / "x.ova")
    metadata = tmp_path / "metadata.json"
    command = qemu_command(
        tmp_path / "o.qcow2",
        "bios",
        {4431: 443, 8081: 8080},
        tmp_path,
        tmp_path / "s",
        options,
        address="192.168.1.50",
        metadata=metadata,
    )
    assert _netdevs(command) == [
        "user,id=n0,net=192.168.1.0/24,host=192.168.1.2,restrict=on,"
        "hostfwd=tcp:127.0.0.1:4431-192.168.1.50:443,hostfwd=tcp:127.0.0.1:8081-192.168.1.50:8080"
    ]
    assert command[command.index("-fw_cfg") + 1] == f"name=opt/passerelle/metadata,file={metadata}"
    with pytest.raises(BootTestError, match="','"):
        qemu_command(
            tmp_path / "o.qcow2",
            "bios",
            {4431: 443},
            tmp_path,
            tmp_path / "s",
            options,
            metadata=tmp_path / "a,b.json",
        )


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[int, list[bytes]]]:
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subject = ["-days", "1", "-subj", "/CN=passerelle", "-keyout", str(key), "-out", str(cert)]
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            *subject,
        ],
        check=True,
        capture_output=True,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    requests: list[bytes] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            try:
                with context.wrap_socket(conn, server_side=True) as tls:
                    requests.append(tls.recv(4096))
                    tls.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            except OSError:  # a client that only checks the handshake hangs up
                conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1], requests
    listener.close()


def test_probe_speaks_https_to_the_health_path(tls_server: tuple[int, list[bytes]]) -> None:
    port, requests = tls_server
    assert probe(port, "tls", timeout=3) == (True, None)
    assert probe(port, "http", timeout=3) == (True, 404)
    assert requests[-1].startswith(b"GET /api/v1/health HTTP/1.1\r\nHost: 192.168.1.101\r\n")
    assert probe(port, "appliance", timeout=3, address="192.168.1.50") == (True, 404)
    assert requests[-1].startswith(b"GET /api/v1/health HTTP/1.1\r\nHost: 192.168.1.50\r\n")


def test_probe_refuses_a_server_without_tls() -> None:
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(1024)
            conn.sendall(b"HTTP/1.1 200 OK\r\n\r\n")

    threading.Thread(target=serve, daemon=True).start()
    with listener, pytest.raises((ssl.SSLError, OSError)):
        probe(listener.getsockname()[1], "http", timeout=3)


def test_a_missing_or_unknown_image_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(BootTestError, match="no such file"):
        boot_test(BootTestOptions(image=tmp_path / "missing.ova"))
    odd = tmp_path / "disk.iso"
    odd.write_bytes(b"x")
    with pytest.raises(BootTestError, match=r"expected \.ova"):
        boot_test(BootTestOptions(image=odd))


def test_metadata_that_first_boot_would_refuse_fails_before_any_boot(tmp_path: Path) -> None:
    image = tmp_path / "disk.raw"
    image.write_bytes(b"\0" * 512)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"ip": "192.168.1.50/24", "hostname": "under_score"}))
    with pytest.raises(BootTestError, match="hostname 'under_score' from metadata refused"):
        boot_test(BootTestOptions(image=image, metadata=bad))
    bad.write_text(json.dumps(["not", "an", "object"]))
    with pytest.raises(BootTestError, match="a JSON object is expected"):
        boot_test(BootTestOptions(image=image, metadata=bad))
    bad.write_text(json.dumps({"colour": "blue"}))
    with pytest.raises(BootTestError, match="none of the keys"):
        boot_test(BootTestOptions(image=image, metadata=bad))
    with pytest.raises(BootTestError, match="check 'ping'"):
        boot_test(BootTestOptions(image=image, check="ping"))


def test_the_cli_hands_metadata_to_the_boot_test(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"ip": "300.1.1.1/24"}))
    image = tmp_path / "disk.raw"
    image.write_bytes(b"\0" * 512)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "passerelle",
            "image",
            "boot-test",
            str(image),
            "--metadata",
            str(bad),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "metadata: ip '300.1.1.1/24' from metadata refused" in result.stderr
    assert "qemu" not in (result.stdout + result.stderr).lower()
