"""``passerelle firstboot`` run as a real process against a temporary root."""

from __future__ import annotations

import json

from firstboot.firstboot_support import ApplianceRoot, run_passerelle


def test_first_boot_then_nothing_then_show_then_reset(appliance: ApplianceRoot) -> None:
    root = str(appliance.path)
    appliance.set_fw_cfg({"ip": "10.7.0.9/16", "gateway": "10.7.0.1", "hostname": "edge1"})

    first = run_passerelle("firstboot", "--root", root)
    assert first.returncode == 0, first.stderr
    assert "network: 10.7.0.9/16, gateway 10.7.0.1, no DNS on ens192 (qemu-fw-cfg)" in first.stderr
    assert "browse to https://10.7.0.9/" in first.stderr

    again = run_passerelle("firstboot", "--root", root)
    assert again.returncode == 0
    assert "first boot already done" in again.stdout and "nothing to do" in again.stdout

    shown = run_passerelle("firstboot", "--root", root, "--show")
    assert shown.returncode == 0, shown.stderr
    facts = json.loads(shown.stdout)
    identity = json.loads(appliance.paths.identity.read_text())
    assert facts["serial"] == identity["serial"]
    assert facts["url"] == "https://10.7.0.9/"
    assert facts["network"]["address"] == "10.7.0.9/16"
    assert facts["licence"]["start"] == identity["first_boot"]
    assert facts["licence"]["days_left"] == 30
    assert len(facts["certificate_sha256"].split(":")) == 32
    assert facts["ha_state"] == "standalone"
    password = appliance.paths.initial_password.read_text().strip()
    assert password not in shown.stdout

    reset = run_passerelle("firstboot", "--root", root, "--factory-reset")
    assert reset.returncode == 0, reset.stderr
    assert "the next boot sets the appliance up again" in reset.stdout
    assert not appliance.paths.marker.exists()
    redo = run_passerelle("firstboot", "--root", root)
    assert redo.returncode == 0 and "first boot done" in redo.stderr


def test_show_before_first_boot_fails_clearly(appliance: ApplianceRoot) -> None:
    done = run_passerelle("firstboot", "--root", str(appliance.path), "--show")
    assert done.returncode == 2
    assert "first boot has not run" in done.stderr


def test_live_actions_refused_for_another_root(appliance: ApplianceRoot) -> None:
    done = run_passerelle("firstboot", "--root", str(appliance.path), "--system", "live")
    assert done.returncode == 2
    assert "need the root prefix /" in done.stderr
    assert not appliance.paths.marker.exists()


def test_reboot_only_with_factory_reset(appliance: ApplianceRoot) -> None:
    done = run_passerelle("firstboot", "--root", str(appliance.path), "--reboot")
    assert done.returncode == 2 and "--reboot goes with --factory-reset" in done.stderr


def test_factory_reset_reboot_goes_through_the_system(appliance: ApplianceRoot) -> None:
    done = run_passerelle("firstboot", "--root", str(appliance.path), "--factory-reset", "--reboot")
    assert done.returncode == 0, done.stderr
    assert appliance.recorded() == [["systemctl", "reboot"]]


def test_qemu_fw_cfg_module_loaded_when_missing(appliance: ApplianceRoot) -> None:
    appliance.set_dmi("QEMU")
    done = run_passerelle("firstboot", "--root", str(appliance.path))
    assert done.returncode == 0, done.stderr
    assert appliance.recorded()[0] == ["modprobe", "qemu_fw_cfg"]
