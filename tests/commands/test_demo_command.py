"""`passerelle demo` as a user runs it: a real process, real curl, Ctrl-C stops everything."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from passerelle.demo.sfb import HTTPS, OOS_NAME, RP_VIP

from support.engine import free_port


def test_demo_serves_the_reference_deployment_and_stops_on_ctrl_c(tmp_path):
    admin = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "passerelle",
            "demo",
            "--dir",
            str(tmp_path),
            "--workers",
            "1",
            "--admin",
            f"127.0.0.1:{admin}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output = []
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            output.append(line)
            if "Press Ctrl-C" in line:
                break
        text = "".join(output)
        assert "Press Ctrl-C" in text, text
        curl_lines = [line.strip() for line in output if line.strip().startswith("curl --cacert")]
        assert curl_lines, text
        ca = tmp_path / "contoso-demo-ca.pem"
        result = subprocess.run(
            [
                "curl",
                "-sS",
                "--max-time",
                "5",
                "--cacert",
                str(ca),
                "--resolve",
                f"{OOS_NAME}:{HTTPS}:{RP_VIP}",
                f"https://{OOS_NAME}:{HTTPS}/",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        assert json.loads(result.stdout)["server"].startswith("oos")
        children = subprocess.run(
            ["pgrep", "-P", str(process.pid)], capture_output=True, text=True
        ).stdout.split()
        assert children, "the demo should run its engine workers as child processes"
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=15) == 0
        for pid in children:
            assert not os.path.exists(f"/proc/{pid}") or _is_zombie(pid), f"worker {pid} left"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _is_zombie(pid: str) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] == "Z"
    except FileNotFoundError:
        return True
