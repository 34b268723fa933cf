"""The console's main screen as text: at most 80 columns and, with the prompt, 25 lines."""

from __future__ import annotations

from passerelle.firstboot.facts import PRODUCT, Facts

WIDTH = 80
RULE = "=" * (WIDTH - 2)
THIN = "-" * (WIDTH - 2)
MENU = (
    ("1", "Network: address, netmask, gateway, DNS"),
    ("2", "Hostname"),
    ("3", "Admin password"),
    ("4", "Factory reset"),
    ("R", "Refresh"),
)
MAIN_PROMPT = " Choose 1-4, or R to refresh: "


def header(title: str, facts: Facts | None = None) -> list[str]:
    version = f"{PRODUCT} {facts.version}" if facts else PRODUCT
    right = facts.network.hostname if facts and facts.network else ""
    left = f" {version}  -  {title}"
    return [left + right.rjust(WIDTH - 2 - len(left)), " " + RULE]


def main_screen(facts: Facts, message: str = "") -> list[str]:
    lines = header("virtual load balancer", facts)
    network = facts.network
    lines.append("")
    if facts.url:
        lines.append(f"   Browse to   {facts.url}")
    else:
        lines.append("   Browse to   (no network settings yet)")
    lines.append("")
    rows: list[tuple[str, str]] = []
    if network:
        settings = network.settings
        where = f" on {network.interface.name}" if network.interface else ""
        rows += [
            ("Hostname", network.hostname),
            ("Address", f"{settings.address}{where} ({network.source})"),
            ("Gateway", str(settings.gateway) if settings.gateway else "none"),
            ("DNS servers", " ".join(map(str, settings.dns)) or "none"),
        ]
    rows.append(("Serial number", facts.identity.serial if facts.identity else "not yet created"))
    rows.append(("Licence", facts.licence.describe() if facts.licence else "unknown"))
    rows.append(("HA", facts.ha_state))
    if facts.report is None:
        rows.append(("Admin login", "first boot has not completed"))
    elif facts.initial_password:
        rows.append(("Admin login", f"admin / {facts.initial_password}  (change it)"))
    else:
        rows.append(("Admin login", "admin (password set)"))
    lines += [f"   {label:<15} {value}" for label, value in rows]
    lines += ["", " " + THIN]
    lines += [f"   {key}  {text}" for key, text in MENU]
    lines += ["", f" {message}" if message else ""]
    return [line[: WIDTH - 1] for line in lines]
