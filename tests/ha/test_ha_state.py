"""The role file: written whole by keepalived's notify, read by the engine and the console."""

from __future__ import annotations

from passerelle.engine.ha import notify
from passerelle.engine.ha.state import STANDALONE, read_role, state_line, write_state


def test_absent_file_means_standalone(tmp_path):
    assert read_role(tmp_path / "ha-state") == STANDALONE


def test_notify_writes_the_console_line(tmp_path):
    path = tmp_path / "run" / "ha-state"
    for state, role in (("MASTER", "active"), ("BACKUP", "standby"), ("FAULT", "fault")):
        assert notify.main([state, "--state-file", str(path), "--peer", "10.0.0.12"]) == 0
        assert path.read_text() == f"{role} (peer 10.0.0.12)\n"
        assert read_role(path) == role
    assert notify.main(["STOP", "--state-file", str(path)]) == 0
    assert path.read_text() == "stopped\n"


def test_line_fits_the_console(tmp_path):
    assert len(state_line("standby", "2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff" * 2)) == 60
    write_state(tmp_path / "s", "active")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left
