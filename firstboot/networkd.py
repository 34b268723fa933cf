"""The operating system's view of the settings: a systemd-networkd unit, resolv.conf, hostname."""

from __future__ import annotations

from passerelle.firstboot.files import write_atomically
from passerelle.firstboot.interfaces import Interface
from passerelle.firstboot.paths import Paths
from passerelle.firstboot.settings import NetworkSettings

HEADER = "# Written by passerelle (first boot, console or API); edits here are overwritten.\n"
# Used only when no ethernet interface could be found: the usual names of virtual NICs.
FALLBACK_MATCH = "en* eth*"
HOSTS_MARK = "# passerelle"


def render_network_file(settings: NetworkSettings, interface: Interface | None) -> str:
    # Matching by name, not MAC: a copied VM gets a new MAC but keeps its interface name.
    lines = [HEADER, "[Match]", f"Name={interface.name if interface else FALLBACK_MATCH}", ""]
    lines += ["[Link]", "RequiredForOnline=yes", ""]
    lines += ["[Network]", "DHCP=no", "LinkLocalAddressing=no", "IPv6AcceptRA=no"]
    lines.append(f"Address={settings.address}")
    if settings.gateway:
        lines.append(f"Gateway={settings.gateway}")
    lines += [f"DNS={server}" for server in settings.dns]
    return "\n".join(lines) + "\n"


def render_resolv_conf(settings: NetworkSettings) -> str:
    return HEADER + "".join(f"nameserver {server}\n" for server in settings.dns)


def write_network_files(
    paths: Paths, settings: NetworkSettings, interface: Interface | None
) -> None:
    write_atomically(paths.networkd_file, render_network_file(settings, interface))
    # left in place it would give a second NIC the management address too
    paths.image_fallback_network.unlink(missing_ok=True)
    # With systemd-resolved, resolv.conf is its symlink and the DNS= lines above feed it.
    if not paths.resolv_conf.is_symlink():
        write_atomically(paths.resolv_conf, render_resolv_conf(settings))


def write_hostname_files(paths: Paths, hostname: str) -> None:
    write_atomically(paths.hostname_file, hostname + "\n")
    try:
        lines = paths.hosts_file.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
    short = hostname.split(".")[0]
    names = hostname if short == hostname else f"{hostname} {short}"
    # sudo and friends resolve the hostname; 127.0.1.1 is Debian's convention for it
    kept = [line for line in lines if line.split()[:1] != ["127.0.1.1"]]
    kept.append(f"127.0.1.1\t{names}\t{HOSTS_MARK}")
    write_atomically(paths.hosts_file, "\n".join(kept) + "\n")
