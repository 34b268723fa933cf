"""Property-based fuzzing of the live API from its own OpenAPI document: no input gives a 5xx,
and every answer matches what the document promises (status codes, media types, schemas)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from passerelle.engine.manage.api.ratelimit import FailureLimiter

from support.api_client import ADMIN_PASSWORD, start_api

SCHEMATHESIS = Path(sys.executable).with_name("st")
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
    "negative_data_rejection",
)


@pytest.mark.timeout(120)
def test_schemathesis_finds_no_server_error(tmp_path):
    if not SCHEMATHESIS.exists():
        pytest.fail(f"schemathesis is not installed ({SCHEMATHESIS}): pip install schemathesis")
    # Fuzzed logins fail by the hundred; the limiter would then lock the fuzzer out of the rest.
    live = start_api(tmp_path, limiter=FailureLimiter(limit=1_000_000))
    try:
        report = tmp_path / "schemathesis.txt"
        with report.open("w") as output_file:
            process = subprocess.Popen(
                [
                    str(SCHEMATHESIS),
                    "run",
                    f"{live.url}/api/v1/openapi.json",
                    "--auth",
                    f"admin:{ADMIN_PASSWORD}",
                    "--tls-verify",
                    str(live.certificate),
                    "--checks",
                    ",".join(CHECKS),
                    "--phases",
                    "examples,fuzzing",
                    "--max-examples",
                    os.environ.get("PASSERELLE_FUZZ_EXAMPLES", "10"),
                    "--seed",
                    os.environ.get("PASSERELLE_FUZZ_SEED", "20240601"),
                    "--workers",
                    "4",
                    "--request-timeout",
                    "10",
                    "--no-color",
                ],
                stdout=output_file,
                stderr=subprocess.STDOUT,
                cwd=tmp_path,
            )
            try:
                returncode = process.wait(timeout=110)
            finally:
                if process.poll() is None:
                    process.kill()
                    process.wait()
    finally:
        live.stop()
    output = report.read_text()
    assert returncode == 0, output[-6000:]
    tested = re.search(r"Tested: (\d+)", output)
    assert tested and int(tested.group(1)) >= 50, output[-3000:]
