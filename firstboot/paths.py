"""Where the appliance keeps each file, under a root prefix ("/" on the appliance)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

STATE_DIR = "/var/lib/passerelle"
RUN_DIR = "/run/passerelle"
FW_CFG_METADATA = "/sys/firmware/qemu_fw_cfg/by_name/opt/passerelle/metadata/raw"


@dataclass(frozen=True)
class Paths:
    root: Path

    @classmethod
    def at(cls, root: str | Path) -> Paths:
        return cls(Path(root).absolute())

    @property
    def is_system_root(self) -> bool:
        return self.root == Path("/")

    def under(self, absolute: str) -> Path:
        return self.root / absolute.lstrip("/")

    # appliance state, kept across reboots
    @property
    def state_dir(self) -> Path:
        return self.under(STATE_DIR)

    @property
    def identity(self) -> Path:
        return self.state_dir / "identity.json"

    @property
    def marker(self) -> Path:
        return self.state_dir / ".firstboot-done"

    @property
    def network_state(self) -> Path:
        return self.state_dir / "network.json"

    @property
    def initial_password(self) -> Path:
        return self.state_dir / "initial-admin-password"

    @property
    def password_reset(self) -> Path:
        return self.state_dir / "admin-password-reset"

    @property
    def tls_dir(self) -> Path:
        return self.state_dir / "tls"

    @property
    def management_cert(self) -> Path:
        return self.tls_dir / "management.crt"

    @property
    def management_key(self) -> Path:
        return self.tls_dir / "management.key"

    @property
    def config_db(self) -> Path:
        return self.state_dir / "passerelle.db"

    # runtime files, gone at reboot
    @property
    def run_dir(self) -> Path:
        return self.under(RUN_DIR)

    @property
    def metadata_file(self) -> Path:
        return self.run_dir / "metadata.json"

    @property
    def ha_state(self) -> Path:
        return self.run_dir / "ha-state"

    @property
    def recorded_actions(self) -> Path:
        return self.run_dir / "recorded-actions.jsonl"

    # what the hypervisor and the kernel expose
    @property
    def fw_cfg_metadata(self) -> Path:
        return self.under(FW_CFG_METADATA)

    @property
    def kvp_pool(self) -> Path:
        return self.under("/var/lib/hyperv/.kvp_pool_0")

    @property
    def serial_console(self) -> Path:
        """The first serial port: what a headless deployment or the boot test reads."""
        return self.under("/dev/ttyS0")

    @property
    def dmi_dir(self) -> Path:
        return self.under("/sys/class/dmi/id")

    @property
    def net_class(self) -> Path:
        return self.under("/sys/class/net")

    # operating system configuration
    @property
    def networkd_file(self) -> Path:
        return self.under("/etc/systemd/network/10-passerelle.network")

    @property
    def image_fallback_network(self) -> Path:
        """The image's catch-all (every en*/eth* at 192.168.1.101) until first boot."""
        return self.under("/etc/systemd/network/90-passerelle-fallback.network")

    @property
    def resolv_conf(self) -> Path:
        return self.under("/etc/resolv.conf")

    @property
    def hostname_file(self) -> Path:
        return self.under("/etc/hostname")

    @property
    def hosts_file(self) -> Path:
        return self.under("/etc/hosts")

    @property
    def ssh_dir(self) -> Path:
        return self.under("/etc/ssh")

    @property
    def timesyncd_dropin(self) -> Path:
        return self.under("/etc/systemd/timesyncd.conf.d/passerelle.conf")

    @property
    def localtime(self) -> Path:
        """A symlink into the zoneinfo tree; timedatectl set-timezone points it at the zone."""
        return self.under("/etc/localtime")

    @property
    def timezone_file(self) -> Path:
        return self.under("/etc/timezone")

    @property
    def timesyncd_enabled_link(self) -> Path:
        """Present while systemd-timesyncd is enabled (``timedatectl set-ntp true``)."""
        return self.under("/etc/systemd/system/sysinit.target.wants/systemd-timesyncd.service")
