import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "appliance: builds the appliance image and boots it under QEMU (slow; needs root, "
        "packer, mmdebstrap, qemu-system-x86, qemu-utils, ovmf, syslinux, mtools, dosfstools)",
    )
