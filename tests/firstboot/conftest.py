"""Fixtures of the first-boot and console tests (defined in firstboot_support)."""

from firstboot.firstboot_support import appliance, console_at

__all__ = ["appliance", "console_at"]
