from pathlib import Path

import pytest

from passerelle.image.variables import (
    PACKER_DIR,
    VariableError,
    load_variables,
    packer_arguments,
    packer_variable_names,
    resolve,
)

REQUIRED = {"version": "1.2.3", "source_disk": "/tmp/disk.raw", "output_directory": "/tmp/out"}


def test_reads_the_variable_blocks_of_the_templates() -> None:
    variables = load_variables()
    assert variables["cpus"].type == "number" and variables["cpus"].default == 2
    assert variables["memory_mib"].default == 2048
    assert variables["packages"].type == "list(string)"
    assert "linux-image-cloud-amd64" in variables["packages"].default
    assert variables["headless"].type == "bool"
    assert variables["version"].required and variables["source_disk"].required
    assert not variables["suite"].required


def test_packer_gets_only_the_variables_its_blocks_use() -> None:
    used = packer_variable_names()
    assert {"source_disk", "output_directory", "version", "cpus", "memory_mib"} <= used
    assert "packages" not in used and "mirrors" not in used  # the wrapper's own inputs


def test_defaults_fill_in_and_values_override() -> None:
    resolved = resolve(load_variables(), {**REQUIRED, "cpus": 4})
    assert resolved["cpus"] == 4
    assert resolved["suite"] == "bookworm"
    assert resolved["version"] == "1.2.3"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("cpus", 0, "from 1 to 64"),
        ("cpus", "2", "expected a number"),
        ("cpus", True, "expected a number"),
        ("memory_mib", 256, "from 512"),
        ("disk_size_mib", 1000, "from 2048"),
        ("version", "latest", "a version like 1.2.3"),
        ("packages", ["systemd", "python3"], "must include linux-image-cloud-amd64"),
        ("packages", "systemd", "expected a list of strings"),
        ("packages", ["linux-image-cloud-amd64", "Bad Name"], "not a Debian package name"),
        ("mirrors", ["http://deb.debian.org/debian"], "not an APT sources line"),
        ("kernel_cmdline", "root=/dev/sda2 quiet", "must not set root="),
        ("headless", "yes", "expected true or false"),
        ("seal_timeout", "soon", "a duration like 15m"),
    ],
)
def test_a_bad_value_is_refused_naming_the_variable(name: str, value: object, message: str) -> None:
    with pytest.raises(VariableError) as caught:
        resolve(load_variables(), {**REQUIRED, name: value})
    assert caught.value.variable == name
    assert name in str(caught.value) and message in str(caught.value)


def test_a_missing_required_variable_is_named() -> None:
    with pytest.raises(VariableError, match="'source_disk': is required"):
        resolve(load_variables(), {"version": "1.0.0", "output_directory": "/x"})


def test_an_undeclared_variable_is_refused() -> None:
    with pytest.raises(VariableError) as caught:
        resolve(load_variables(), {**REQUIRED, "cpu": 2})
    assert caught.value.variable == "cpu"


def test_esp_must_leave_room_for_the_root_file_system() -> None:
    with pytest.raises(VariableError) as caught:
        resolve(load_variables(), {**REQUIRED, "disk_size_mib": 2048, "esp_size_mib": 1024})
    assert caught.value.variable == "esp_size_mib"


def test_packer_arguments_are_hcl_literals() -> None:
    resolved = resolve(load_variables(), REQUIRED)
    arguments = packer_arguments(resolved, ["cpus", "headless", "version"])
    assert arguments == ["-var", "cpus=2", "-var", "headless=true", "-var", "version=1.2.3"]


def test_a_variable_declared_twice_is_an_error(tmp_path: Path) -> None:
    block = 'variable "cpus" {\n  type = number\n  default = 2\n}\n'
    (tmp_path / "a.pkr.hcl").write_text(block)
    (tmp_path / "b.pkr.hcl").write_text(block)
    with pytest.raises(VariableError, match="declared twice"):
        load_variables(tmp_path)


def test_template_files_are_present() -> None:
    assert (PACKER_DIR / "appliance.pkr.hcl").is_file()
    assert (PACKER_DIR / "variables.pkr.hcl").is_file()
