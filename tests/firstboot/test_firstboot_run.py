"""The first boot against a temporary root: what it writes, what it asks the system to do,
that it runs once, and what a factory reset undoes."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import re
import stat
import uuid

import pytest
from cryptography import x509
from firstboot.firstboot_support import ApplianceRoot

from passerelle.firstboot import identity as identity_module
from passerelle.firstboot.facts import gather_facts
from passerelle.firstboot.first_boot import Report, load_report, run_first_boot
from passerelle.firstboot.ha_state import read_ha_state
from passerelle.firstboot.interfaces import first_ethernet
from passerelle.firstboot.licence import demo_licence
from passerelle.firstboot.network_state import load_network_state
from passerelle.firstboot.password import ALPHABET, generate_password
from passerelle.firstboot.reset import factory_reset
from passerelle.firstboot.sources import default_sources
from passerelle.firstboot.system import (
    LiveRunner,
    System,
    SystemActionError,
    live_system,
    system_for,
)

NOW = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)
SERIAL = re.compile(r"^PSL-[A-Z2-7]{12}$")


def first_boot(appliance: ApplianceRoot, now: dt.datetime = NOW) -> Report | None:
    return run_first_boot(
        appliance.paths, appliance.system(), default_sources(appliance.paths), now=now
    )


def test_default_first_boot(appliance: ApplianceRoot) -> None:
    fallback = appliance.paths.image_fallback_network
    fallback.parent.mkdir(parents=True)
    fallback.write_text("[Match]\nName=en* eth*\n[Network]\nAddress=192.168.1.101/24\n")
    report = first_boot(appliance)
    assert report is not None and report.network_source == "default"
    paths = appliance.paths
    network = paths.networkd_file.read_text()
    assert "[Match]\nName=ens192\n" in network
    assert "Address=192.168.1.101/24" in network
    assert "DHCP=no" in network and "Gateway=" not in network
    assert not fallback.exists()
    assert stat.S_IMODE(paths.state_dir.stat().st_mode) == 0o700
    assert paths.hostname_file.read_text() == "passerelle\n"
    assert "127.0.1.1\tpasserelle" in paths.hosts_file.read_text()

    ident = json.loads(paths.identity.read_text())
    assert SERIAL.match(ident["serial"]) and ident["serial_source"] == "random"
    assert ident["first_boot"] == "2025-03-01T12:00:00Z"

    password = paths.initial_password.read_text()
    assert re.fullmatch(r"([A-Z2-9]{4}-){3}[A-Z2-9]{4}\n", password)
    assert stat.S_IMODE(paths.initial_password.stat().st_mode) == 0o600
    assert stat.S_IMODE(paths.management_key.stat().st_mode) == 0o600

    cert = x509.load_pem_x509_certificate(paths.management_cert.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["passerelle"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("192.168.1.101")]

    assert appliance.recorded() == [
        ["networkctl", "reload"],
        ["networkctl", "reconfigure", "ens192"],
        ["hostnamectl", "set-hostname", "passerelle"],
        ["ssh-keygen", "-A", "-f", str(appliance.path)],
    ]
    assert json.loads(paths.marker.read_text())["admin_password_source"] == "generated"


def test_second_run_does_nothing(appliance: ApplianceRoot) -> None:
    assert first_boot(appliance) is not None
    before = {p: p.read_bytes() for p in appliance.paths.state_dir.rglob("*") if p.is_file()}
    actions = len(appliance.recorded())
    assert first_boot(appliance, NOW + dt.timedelta(days=3)) is None
    after = {p: p.read_bytes() for p in appliance.paths.state_dir.rglob("*") if p.is_file()}
    assert after == before
    assert len(appliance.recorded()) == actions


def test_settings_from_fw_cfg(appliance: ApplianceRoot) -> None:
    appliance.set_fw_cfg(
        {
            "ip": "10.20.30.40/24",
            "gateway": "10.20.30.1",
            "dns": ["10.20.30.53", "10.20.30.54"],
            "hostname": "lb-a.example.com",
            "admin_password": "deployment-secret",
        }
    )
    report = first_boot(appliance)
    assert report is not None and report.network_source == "qemu-fw-cfg"
    assert report.admin_password_source == "deployment"
    network = appliance.paths.networkd_file.read_text()
    assert "Address=10.20.30.40/24\nGateway=10.20.30.1\nDNS=10.20.30.53\nDNS=10.20.30.54\n" in (
        network
    )
    assert appliance.paths.resolv_conf.read_text().endswith(
        "nameserver 10.20.30.53\nnameserver 10.20.30.54\n"
    )
    assert appliance.paths.hostname_file.read_text() == "lb-a.example.com\n"
    assert appliance.paths.initial_password.read_text() == "deployment-secret\n"
    # the deployment's own password is its secret: never shown on the console
    facts = gather_facts(appliance.paths, NOW)
    assert facts.initial_password is None and facts.initial_password_pending
    cert = x509.load_pem_x509_certificate(appliance.paths.management_cert.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["lb-a.example.com"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("10.20.30.40")]


def test_bad_hypervisor_values_are_refused_and_defaults_used(
    appliance: ApplianceRoot, caplog: pytest.LogCaptureFixture
) -> None:
    appliance.set_fw_cfg(
        {
            "ip": "10.0.0.300/24",
            "gateway": "10.9.9.9",
            "hostname": "bad_name",
            "admin_password": "short",
        }
    )
    caplog.set_level("INFO", "passerelle.firstboot")
    report = first_boot(appliance)
    assert report is not None
    assert report.network_source == "default"
    assert report.admin_password_source == "generated"
    assert "Address=192.168.1.101/24" in appliance.paths.networkd_file.read_text()
    assert "Gateway" not in appliance.paths.networkd_file.read_text()
    assert appliance.paths.hostname_file.read_text() == "passerelle\n"
    assert appliance.paths.initial_password.read_text() != "short\n"
    notes = "\n".join(report.notes)
    assert "ip '10.0.0.300/24' from qemu-fw-cfg refused: '10.0.0.300' is not" in notes
    assert "gateway '10.9.9.9' from qemu-fw-cfg refused" in notes and "outside" in notes
    assert "hostname 'bad_name'" in notes
    assert "admin_password (hidden)" in notes and "short" not in notes
    assert "ip '10.0.0.300/24' from qemu-fw-cfg refused" in caplog.text
    assert load_network_state(appliance.paths).notes == report.notes


def test_serial_from_the_smbios_uuid(appliance: ApplianceRoot) -> None:
    system_uuid = "4231a7d6-0c3e-7b52-9d8e-1f2a3b4c5d6e"
    appliance.set_dmi("VMware, Inc.", system_uuid)
    first_boot(appliance)
    ident = json.loads(appliance.paths.identity.read_text())
    assert ident["serial_source"] == "smbios-uuid"
    assert ident["serial"] == identity_module.serial_from_uuid(uuid.UUID(system_uuid))
    assert SERIAL.match(ident["serial"])
    other = identity_module.serial_from_uuid(uuid.UUID(int=uuid.UUID(system_uuid).int + 1))
    assert other != ident["serial"]


@pytest.mark.parametrize(
    "placeholder", ["00000000-0000-0000-0000-000000000000", "03000200-0400-0500-0006-000700080009"]
)
def test_placeholder_uuid_gives_a_random_serial(appliance: ApplianceRoot, placeholder: str) -> None:
    appliance.set_dmi("QEMU", placeholder)
    first_boot(appliance)
    assert json.loads(appliance.paths.identity.read_text())["serial_source"] == "random"


def test_factory_reset_keeps_serial_and_licence_clock(appliance: ApplianceRoot) -> None:
    first_boot(appliance)
    paths = appliance.paths
    (paths.ssh_dir / "ssh_host_ed25519_key").write_text("key")
    paths.config_db.write_text("db")
    serial = json.loads(paths.identity.read_text())["serial"]
    old_password = paths.initial_password.read_text()
    old_cert = paths.management_cert.read_bytes()

    removed = factory_reset(paths)
    assert paths.marker in removed and paths.config_db in removed
    for gone in (
        paths.marker,
        paths.tls_dir,
        paths.initial_password,
        paths.networkd_file,
        paths.ssh_dir / "ssh_host_ed25519_key",
        paths.config_db,
        paths.network_state,
    ):
        assert not gone.exists(), gone
    assert paths.identity.exists()

    later = NOW + dt.timedelta(days=10)
    report = first_boot(appliance, later)
    assert report is not None
    ident = json.loads(paths.identity.read_text())
    assert ident["serial"] == serial and ident["first_boot"] == "2025-03-01T12:00:00Z"
    assert paths.initial_password.read_text() != old_password
    assert paths.management_cert.read_bytes() != old_cert
    assert gather_facts(paths, later).licence.days_left == 20


def test_interrupted_run_keeps_what_was_made(appliance: ApplianceRoot) -> None:
    first_boot(appliance)
    password = appliance.paths.initial_password.read_text()
    cert = appliance.paths.management_cert.read_bytes()
    appliance.paths.marker.unlink()  # as if power was lost before the marker
    assert first_boot(appliance, NOW + dt.timedelta(hours=1)) is not None
    assert appliance.paths.initial_password.read_text() == password
    assert appliance.paths.management_cert.read_bytes() == cert
    assert json.loads(appliance.paths.identity.read_text())["first_boot"] == "2025-03-01T12:00:00Z"


def test_first_ethernet_interface(appliance: ApplianceRoot) -> None:
    appliance.add_interface("docker0", "02:42:00:00:00:01", ifindex=1, physical=False)
    appliance.add_interface("ens224", "00:50:56:aa:bb:dd", ifindex=3)
    (appliance.paths.net_class / "lo").mkdir()
    (appliance.paths.net_class / "lo" / "type").write_text("772\n")
    found = first_ethernet(appliance.paths)
    assert found is not None and (found.name, found.mac) == ("ens192", "00:50:56:aa:bb:cc")


def test_no_interface_matches_the_usual_names(appliance: ApplianceRoot) -> None:
    for entry in appliance.paths.net_class.iterdir():
        (entry / "device").rmdir()
    first_boot(appliance)
    assert "Name=en* eth*" in appliance.paths.networkd_file.read_text()
    assert ["networkctl", "reload"] in appliance.recorded()


def test_demo_licence_days() -> None:
    start = NOW
    assert demo_licence(start, start).days_left == 30
    assert demo_licence(start, start + dt.timedelta(days=29, hours=1)).days_left == 1
    late = demo_licence(start, start + dt.timedelta(days=30))
    assert late.expired and late.days_left == 0
    assert "expired on 2025-03-31" in late.describe()
    assert demo_licence(start, start - dt.timedelta(days=400)).days_left == 30
    assert demo_licence(start, start + dt.timedelta(days=12)).describe() == (
        "demo, 18 days left (until 2025-03-31)"
    )


def test_ha_state_file(appliance: ApplianceRoot) -> None:
    assert read_ha_state(appliance.paths) == "standalone"
    appliance.paths.run_dir.mkdir(parents=True)
    appliance.paths.ha_state.write_text("active (peer 10.0.0.6 standby)\nmore\n")
    assert read_ha_state(appliance.paths) == "active (peer 10.0.0.6 standby)"
    appliance.paths.ha_state.write_text("\x1b[2Jstandby\n")
    assert read_ha_state(appliance.paths) == "[2Jstandby"


def test_generated_passwords() -> None:
    passwords = {generate_password() for _ in range(50)}
    assert len(passwords) == 50
    for password in passwords:
        groups = password.split("-")
        assert [len(g) for g in groups] == [4, 4, 4, 4]
        assert set("".join(groups)) <= set(ALPHABET)
    assert not set("01OIL") & set(ALPHABET)


def test_live_system_refuses_another_root(appliance: ApplianceRoot) -> None:
    with pytest.raises(SystemActionError, match="root prefix /"):
        live_system(appliance.paths)
    with pytest.raises(SystemActionError):
        system_for(appliance.paths, "live")
    assert system_for(appliance.paths).runner.__class__.__name__ == "RecordingRunner"


def test_live_ssh_host_keys_under_a_prefix(appliance: ApplianceRoot) -> None:
    # ssh-keygen -A -f writes only under the prefix, so the real command is safe to run here
    System(appliance.paths, LiveRunner()).generate_ssh_host_keys()
    keys = sorted(p.name for p in appliance.paths.ssh_dir.glob("ssh_host_*_key"))
    assert "ssh_host_ed25519_key" in keys
    key = appliance.paths.ssh_dir / "ssh_host_ed25519_key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600


def test_live_runner_reports_failures() -> None:
    with pytest.raises(SystemActionError, match="false: exit status 1"):
        LiveRunner().run(["false"])
    with pytest.raises(SystemActionError, match="no-such-command-here"):
        LiveRunner().run(["no-such-command-here"])


def test_hostname_falls_back_when_hostnamectl_fails(appliance: ApplianceRoot) -> None:
    class Failing:
        def __init__(self) -> None:
            self.ran: list[list[str]] = []

        def run(self, argv: list[str]) -> None:
            self.ran.append(list(argv))
            if argv[0] == "hostnamectl":
                raise SystemActionError("hostnamectl: Failed to connect to bus")

    runner = Failing()
    System(appliance.paths, runner).set_hostname("lb7")
    assert runner.ran == [["hostnamectl", "set-hostname", "lb7"], ["hostname", "lb7"]]
    assert appliance.paths.hostname_file.read_text() == "lb7\n"


def test_report_round_trip(appliance: ApplianceRoot) -> None:
    report = first_boot(appliance)
    assert load_report(appliance.paths) == report
