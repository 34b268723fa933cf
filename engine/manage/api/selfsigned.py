"""The management listener's self-signed certificate, made in a short-lived child process.

Making a certificate needs cryptography, whose library (~10 MB) would otherwise stay resident in
the engine's supervisor for its whole life after a first start without a certificate. The child
writes the files that the engine then only reads (through the ``ssl`` module).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

TIMEOUT = 60.0


def make_in_child(directory: Path, name: str, common_name: str, dns_names: list[str]) -> None:
    """Write ``name.crt`` and ``name.key`` in ``directory``; OSError when the child fails."""
    try:
        result = subprocess.run(
            [sys.executable, "-m", __name__, str(directory), name, common_name, *dns_names],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        raise OSError(f"making a self-signed certificate took over {TIMEOUT:.0f} s") from None
    if result.returncode != 0:
        detail = result.stderr.strip().splitlines()[-1:] or [f"status {result.returncode}"]
        raise OSError(f"could not make a self-signed certificate: {detail[0]}")


def main(argv: list[str]) -> None:
    from passerelle.engine.tls.certificates import make_self_signed, write_pem_files

    directory, name, common_name, *dns_names = argv
    cert_pem, key_pem = make_self_signed(common_name, dns_names)
    write_pem_files(Path(directory), name, cert_pem, key_pem)


if __name__ == "__main__":
    main(sys.argv[1:])
