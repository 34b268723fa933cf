"""A WS-Management server speaking the WinRS SOAP protocol (Create, Command, Receive, Signal,
Delete, faults) over HTTP with NTLM (pyspnego, server side) and WinRM message encryption,
for unmodified pywinrm clients. powershell.exe -EncodedCommand is decoded back to the
script text and handed to a Python function playing the Windows host."""

from __future__ import annotations

import base64
import os
import struct
import tempfile
import threading
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from xml.sax.saxutils import escape

import spnego

NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "a": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
    "w": "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd",
    "rsp": "http://schemas.microsoft.com/wbem/wsman/1/windows/shell",
}
ACTION = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/"
TRANSFER = "http://schemas.xmlsoap.org/ws/2004/09/transfer/"
ENCRYPTED = "application/HTTP-SPNEGO-session-encrypted"
BOUNDARY = b"--Encrypted Boundary"
DONE = ACTION + "CommandState/Done"
RUNNING = ACTION + "CommandState/Running"


@dataclass
class CommandRun:
    """What a host answers to one command line: stdout, stderr, exit code."""

    stdout: bytes
    stderr: bytes
    exit_code: int
    receives: int = 0


@dataclass
class Received:
    command: str
    arguments: list[str]
    script: str | None  # the decoded -EncodedCommand text
    codepage: str | None


Host = Callable[[str], tuple[str, str, int]]  # PowerShell script -> stdout, stderr, exit code


@dataclass
class WsmanState:
    host: Host
    shells: dict[str, str | None] = field(default_factory=dict)  # shell id -> codepage
    commands: dict[str, CommandRun] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    encrypted_messages: int = 0
    plaintext_messages: int = 0
    fault_on: str | None = None  # an action name answered with a WS-Management fault


def _envelope(action: str, relates_to: str, body: str, extra_header: str = "") -> bytes:
    return (
        f'<s:Envelope xmlns:s="{NS["s"]}" xmlns:a="{NS["a"]}" xmlns:w="{NS["w"]}" '
        f'xmlns:rsp="{NS["rsp"]}" xmlns:x="http://schemas.xmlsoap.org/ws/2004/09/transfer">'
        f"<s:Header><a:Action>{action}</a:Action><a:MessageID>uuid:{uuid.uuid4()}</a:MessageID>"
        f"<a:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:To>"
        f"<a:RelatesTo>{relates_to}</a:RelatesTo>{extra_header}</s:Header>"
        f"<s:Body>{body}</s:Body></s:Envelope>"
    ).encode()


def _fault(relates_to: str, code: int, reason: str) -> bytes:
    body = (
        "<s:Fault><s:Code><s:Value>s:Receiver</s:Value><s:Subcode>"
        "<s:Value>w:InternalError</s:Value></s:Subcode></s:Code>"
        f'<s:Reason><s:Text xml:lang="en-US">{escape(reason)}</s:Text></s:Reason>'
        f'<s:Detail><f:WSManFault xmlns:f="http://schemas.microsoft.com/wbem/wsman/1/wsmanfault"'
        f' Code="{code}" Machine="hyperv-test"><f:Message>{escape(reason)}</f:Message>'
        "</f:WSManFault></s:Detail></s:Fault>"
    )
    return _envelope("http://schemas.dmtf.org/wbem/wsman/1/wsman/fault", relates_to, body)


def decode_encoded_command(arguments: list[str]) -> str | None:
    lowered = [a.lower() for a in arguments]
    for flag in ("-encodedcommand", "-enc", "-e"):
        if flag in lowered:
            return base64.b64decode(arguments[lowered.index(flag) + 1]).decode("utf-16-le")
    return None


class WsmanHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    wbufsize = 1 << 16  # headers and body leave in one segment (no delayed-ACK stalls)
    state: WsmanState  # set on the subclass made per server

    def log_message(self, format: str, *args: object) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        self.context: spnego.ContextProxy | None = None

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        authorization = self.headers.get("Authorization", "")
        if authorization:
            scheme, _, token = authorization.partition(" ")
            if self.context is None or self.context.complete:
                self.context = spnego.server(protocol="ntlm")
            try:
                answer = self.context.step(base64.b64decode(token))
            except spnego.exceptions.SpnegoError:
                self.context = None
                self._send(401, headers={"WWW-Authenticate": "Negotiate", "Connection": "close"})
                self.close_connection = True
                return
            if not self.context.complete:
                challenge = f"{scheme} {base64.b64encode(answer or b'').decode()}"
                self._send(401, headers={"WWW-Authenticate": challenge})
                return
        if self.context is None or not self.context.complete:
            self._send(401, headers={"WWW-Authenticate": "Negotiate"})
            return
        if not body:
            self._send(200)  # pywinrm's empty POST that sets up the encryption context
            return
        content_type = self.headers.get("Content-Type", "")
        encrypted = "multipart/encrypted" in content_type
        if encrypted:
            self.state.encrypted_messages += 1
            message = self._decrypt(body)
        else:
            self.state.plaintext_messages += 1
            message = body
        status, reply = self._dispatch(message)
        if encrypted:
            wrapped = self._encrypt(reply)
            self._send(
                status,
                wrapped,
                {
                    "Content-Type": f'multipart/encrypted;protocol="{ENCRYPTED}";'
                    'boundary="Encrypted Boundary"'
                },
            )
        else:
            self._send(status, reply, {"Content-Type": "application/soap+xml;charset=UTF-8"})

    def _decrypt(self, body: bytes) -> bytes:
        assert self.context is not None
        parts = [p for p in body.split(BOUNDARY + b"\r\n") if p]
        header, payload = parts[0], parts[1]
        length = int(header.split(b"Length=")[1].strip())
        if payload.endswith(BOUNDARY + b"--\r\n"):
            payload = payload[: -len(BOUNDARY + b"--\r\n")]
        data = payload.replace(b"\tContent-Type: application/octet-stream\r\n", b"")
        signature_length = struct.unpack("<i", data[:4])[0]
        signature = data[4 : 4 + signature_length]
        plain = self.context.unwrap(signature + data[4 + signature_length :]).data
        assert len(plain) == length, "decrypted length differs from OriginalContent"
        return plain

    def _encrypt(self, message: bytes) -> bytes:
        assert self.context is not None
        wrapped = self.context.wrap(message, encrypt=True).data
        signature, sealed = wrapped[:16], wrapped[16:]
        return (
            BOUNDARY + b"\r\n\tContent-Type: " + ENCRYPTED.encode() + b"\r\n"
            b"\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length="
            + str(len(message)).encode()
            + b"\r\n"
            + BOUNDARY
            + b"\r\n\tContent-Type: application/octet-stream\r\n"
            + struct.pack("<i", len(signature))
            + signature
            + sealed
            + BOUNDARY
            + b"--\r\n"
        )

    def _dispatch(self, message: bytes) -> tuple[int, bytes]:
        root = ET.fromstring(message)
        action = root.findtext("s:Header/a:Action", "", NS)
        message_id = root.findtext("s:Header/a:MessageID", "", NS)
        selector = root.find("s:Header/w:SelectorSet/w:Selector[@Name='ShellId']", NS)
        shell_id = selector.text if selector is not None else None
        name = action.rsplit("/", 1)[-1]
        state = self.state
        if state.fault_on == name:
            return 500, _fault(message_id, 2147942405, "Access is denied.")
        if name != "Create" and shell_id not in state.shells:
            return 500, _fault(
                message_id,
                2150858843,
                "The request for the Windows Remote "
                "Shell with ShellId failed because the shell was not found.",
            )
        if action == TRANSFER + "Create":
            shell_id = str(uuid.uuid4()).upper()
            options = root.findall("s:Header/w:OptionSet/w:Option", NS)
            codepage = next((o.text for o in options if o.get("Name") == "WINRS_CODEPAGE"), None)
            state.shells[shell_id] = codepage
            body = (
                "<x:ResourceCreated><a:Address>http://hyperv-test:5985/wsman</a:Address>"
                "<a:ReferenceParameters><w:ResourceURI>"
                "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd</w:ResourceURI>"
                f'<w:SelectorSet><w:Selector Name="ShellId">{shell_id}</w:Selector>'
                "</w:SelectorSet></a:ReferenceParameters></x:ResourceCreated>"
                f"<rsp:Shell><rsp:ShellId>{shell_id}</rsp:ShellId></rsp:Shell>"
            )
            return 200, _envelope(TRANSFER + "CreateResponse", message_id, body)
        if action == ACTION + "Command":
            command = root.findtext("s:Body/rsp:CommandLine/rsp:Command", "", NS)
            arguments = (root.findtext("s:Body/rsp:CommandLine/rsp:Arguments", "", NS)).split()
            # pywinrm's run_ps puts everything in Command; run_cmd uses Arguments too.
            script = decode_encoded_command(command.split() + arguments)
            state.received.append(Received(command, arguments, script, state.shells[shell_id]))
            command_id = str(uuid.uuid4()).upper()
            if script is None:
                run = CommandRun(b"", b"'" + command.encode() + b"' is not recognized\r\n", 1)
            else:
                stdout, stderr, code = state.host(script)
                run = CommandRun(stdout.encode(), stderr.encode(), code)
            state.commands[command_id] = run
            body = (
                f"<rsp:CommandResponse><rsp:CommandId>{command_id}</rsp:CommandId>"
                "</rsp:CommandResponse>"
            )
            return 200, _envelope(ACTION + "CommandResponse", message_id, body)
        if action == ACTION + "Receive":
            stream = root.find("s:Body/rsp:Receive/rsp:DesiredStream", NS)
            command_id = stream.get("CommandId") if stream is not None else ""
            run = state.commands[command_id or ""]
            run.receives += 1
            # Output comes in two Receives, the way a real host streams a longer run.
            half = len(run.stdout) // 2
            out = run.stdout[:half] if run.receives == 1 else run.stdout[half:]
            done = run.receives > 1
            streams = "".join(
                f'<rsp:Stream Name="{n}" CommandId="{command_id}">'
                f"{base64.b64encode(data).decode()}</rsp:Stream>"
                for n, data in (("stdout", out), ("stderr", run.stderr if done else b""))
                if data
            )
            streams += "".join(
                f'<rsp:Stream Name="{n}" CommandId="{command_id}" End="true"></rsp:Stream>'
                for n in ("stdout", "stderr")
                if done
            )
            if done:
                status = (
                    f'<rsp:CommandState CommandId="{command_id}" State="{DONE}">'
                    f"<rsp:ExitCode>{run.exit_code}</rsp:ExitCode></rsp:CommandState>"
                )
            else:
                status = f'<rsp:CommandState CommandId="{command_id}" State="{RUNNING}"/>'
            body = f"<rsp:ReceiveResponse>{streams}{status}</rsp:ReceiveResponse>"
            return 200, _envelope(ACTION + "ReceiveResponse", message_id, body)
        if action == ACTION + "Signal":
            return 200, _envelope(ACTION + "SignalResponse", message_id, "<rsp:SignalResponse/>")
        if action == TRANSFER + "Delete":
            del state.shells[shell_id or ""]
            return 200, _envelope(TRANSFER + "DeleteResponse", message_id, "")
        return 500, _fault(message_id, 2150858817, f"unsupported action {action}")


class WsmanServer:
    """Listens on 127.0.0.1:<free port>; accepts DOMAIN\\user with the password given."""

    def __init__(self, host: Host, user: str, password: str, domain: str = "LAB") -> None:
        self.state = WsmanState(host=host)
        descriptor, self._users = tempfile.mkstemp(suffix=".ntlm")
        with os.fdopen(descriptor, "w") as users:
            users.write(f"{domain}:{user}:{password}\n")
        self._previous = os.environ.get("NTLM_USER_FILE")
        os.environ["NTLM_USER_FILE"] = self._users
        handler = type("Handler", (WsmanHandler,), {"state": self.state})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        if self._previous is None:
            os.environ.pop("NTLM_USER_FILE", None)
        else:
            os.environ["NTLM_USER_FILE"] = self._previous
        os.unlink(self._users)
