"""What every nginx the suite runs shares: foreground, its own prefix, pid, logs and temp paths
(nothing under /var or /etc is touched), many file descriptors, no access log."""

from __future__ import annotations

from pathlib import Path


def argv(prefix: Path, conf: Path) -> list[str]:
    return [
        "nginx",
        "-p",
        f"{prefix}/",
        "-c",
        str(conf),
        "-e",
        str(prefix / "error.log"),
        "-g",
        "daemon off;",
    ]


def main_block(prefix: Path, workers: int, modules: list[str] | None = None) -> str:
    loads = "".join(f"load_module {module};\n" for module in modules or ())
    return (
        f"{loads}"
        f"worker_processes {workers};\n"
        "worker_rlimit_nofile 20000;\n"
        f"pid {prefix / 'nginx.pid'};\n"
        f"error_log {prefix / 'error.log'} warn;\n"
        "events { worker_connections 16384; }\n"
    )


def http_common(prefix: Path) -> str:
    temp = prefix / "temp"
    paths = "".join(
        f"{kind}_temp_path {temp / kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return (
        f"{paths}"
        "access_log off;\n"
        "default_type text/plain;\n"
        "sendfile on;\n"
        "tcp_nopush on;\n"
        # wrk's connections and the proxies' pooled ones must never be closed by a count
        "keepalive_requests 1000000;\n"
        "keepalive_timeout 660s;\n"
    )


def prepare(prefix: Path) -> None:
    (prefix / "temp").mkdir(parents=True, exist_ok=True)
    prefix.chmod(0o755)
