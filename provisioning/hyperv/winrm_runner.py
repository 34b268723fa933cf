"""Running generated PowerShell on a Hyper-V host over WinRM and reading its JSON answer.

NTLM over plain HTTP is acceptable only because WinRM's message encryption wraps every
message in the NTLM session key; pywinrm does that whenever the endpoint is http://.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import requests
from winrm.exceptions import (
    InvalidCredentialsError,
    WinRMError,
    WinRMTransportError,
    WSManFaultError,
)
from winrm.protocol import Protocol

from passerelle.provisioning.errors import DeployError
from passerelle.provisioning.hyperv.powershell import encode, render

UTF8_CODEPAGE = 65001
POWERSHELL = "powershell.exe"
POWERSHELL_ARGS = ["-NoLogo", "-NoProfile", "-NonInteractive", "-ExecutionPolicy", "Bypass"]


def endpoint(host: str, https: bool, port: int | None) -> str:
    scheme = "https" if https else "http"
    port = port or (5986 if https else 5985)
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}:{port}/wsman"


def _clean_clixml(text: str) -> str:
    """The readable part of a PowerShell CLIXML error stream (errors before our handler)."""
    if not text.startswith("#< CLIXML"):
        return text.strip()
    import xml.etree.ElementTree as ET

    try:
        root = ET.fromstring(text.split("\n", 1)[1])
    except (ET.ParseError, IndexError):
        return text.strip()
    parts = [e.text or "" for e in root.iter() if e.tag.endswith("}S") and e.get("S") == "Error"]
    return "".join(parts).replace("_x000D__x000A_", " ").strip() or text.strip()


class PowerShellRunner:
    """One Hyper-V host; each run opens a WinRS shell, runs powershell.exe, closes it."""

    def __init__(
        self,
        host: str,
        user: str,
        password: str,
        https: bool = False,
        port: int | None = None,
        insecure: bool = False,
        operation_timeout: int = 20,
    ) -> None:
        self.host = host
        self.user = user
        self.endpoint = endpoint(host, https, port)
        self.protocol = Protocol(
            self.endpoint,
            transport="ntlm",
            username=user,
            password=password,
            message_encryption="auto",
            server_cert_validation="ignore" if insecure else "validate",
            operation_timeout_sec=operation_timeout,
            read_timeout_sec=operation_timeout + 10,
        )

    def run(self, body: str, params: Mapping[str, Any], what: str) -> Any:
        """The script's JSON result; its error record raised as DeployError."""
        script = render(body, params)
        try:
            shell = self.protocol.open_shell(codepage=UTF8_CODEPAGE)
            try:
                command = self.protocol.run_command(
                    shell, POWERSHELL, [*POWERSHELL_ARGS, "-EncodedCommand", encode(script)]
                )
                stdout, stderr, code = self.protocol.get_command_output(shell, command)
                self.protocol.cleanup_command(shell, command)
            finally:
                self.protocol.close_shell(shell, close_session=False)
        except InvalidCredentialsError as exc:
            raise DeployError(
                f"{self.host} rejected the login of {self.user!r}: check --user (DOMAIN\\user "
                "or user@domain) and --password (or PASSERELLE_HYPERV_PASSWORD)"
            ) from exc
        except requests.exceptions.SSLError as exc:
            raise DeployError(
                f"{self.endpoint}: TLS certificate not trusted ({exc}); install its CA "
                "certificate or pass --insecure"
            ) from exc
        except requests.exceptions.ConnectionError as exc:
            raise DeployError(
                f"cannot reach WinRM at {self.endpoint}: check --host and that WinRM is "
                "enabled on the host (Enable-PSRemoting) and allowed through its firewall"
            ) from exc
        except requests.exceptions.Timeout as exc:
            raise DeployError(f"{self.endpoint}: WinRM stopped answering during {what}") from exc
        except WSManFaultError as exc:
            raise DeployError(f"{self.host}: WinRM refused {what}: {exc.reason}") from exc
        except (WinRMTransportError, WinRMError) as exc:
            raise DeployError(f"{self.host}: WinRM failed during {what}: {exc}") from exc
        out = stdout.decode("utf-8", "replace")
        err = stderr.decode("utf-8", "replace")
        if code != 0:
            raise DeployError(f"{self.host}: {what} failed: {self._error_message(err, code)}")
        try:
            return json.loads(out) if out.strip() else None
        except ValueError as exc:
            raise DeployError(
                f"{self.host}: {what}: unexpected output from PowerShell: {out[:200]!r}"
            ) from exc

    @staticmethod
    def _error_message(stderr: str, code: int) -> str:
        try:
            record = json.loads(stderr)
        except ValueError:
            return _clean_clixml(stderr) or f"exit code {code}"
        if isinstance(record, dict) and record.get("message"):
            return str(record["message"])
        return stderr.strip() or f"exit code {code}"
