"""packaging/systemd/meterhub.service: systemd accepts it (systemd-analyze
verify, with ExecStart pointed at the binary under test) and it keeps the
hardening docs/operations.md promises."""
import os
import re
import shutil
import subprocess

import pytest

from conftest import meterhub_bin

UNIT = os.path.join(os.path.dirname(__file__), "..", "..", "packaging", "systemd",
                    "meterhub.service")


def settings():
    out = {}
    for line in open(UNIT, encoding="utf-8"):
        line = line.strip()
        if line and not line.startswith(("#", "[")):
            k, _, v = line.partition("=")
            out.setdefault(k, []).append(v)
    return out


def test_unit_keeps_its_promises(tmp_path):
    s = settings()
    for key, value in (("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"),
                       ("ReadWritePaths", "/var/lib/meterhub"), ("Restart", "on-failure"),
                       ("StateDirectory", "meterhub"), ("User", "meterhub"),
                       ("PrivateTmp", "yes"), ("ProtectHome", "yes"),
                       ("KillSignal", "SIGTERM"), ("CapabilityBoundingSet", "")):
        assert s.get(key) == [value], (key, s.get(key))
    exec_start = s["ExecStart"][0]
    assert "--db /var/lib/meterhub/" in exec_start
    # The binary accepts its options: run them with a harmless subcommand on a
    # scratch database (an unknown option or a bad value exits non-zero).
    args = exec_start.replace("/var/lib/meterhub/", f"{tmp_path}/").split()[1:]
    p = subprocess.run([meterhub_bin(), *args, "token", "list"], capture_output=True, text=True,
                       timeout=30, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p
    assert os.path.exists(tmp_path / "meterhub.db")


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed")
def test_systemd_analyze_verify(tmp_path):
    text = open(UNIT, encoding="utf-8").read()
    unit = tmp_path / "meterhub.service"
    unit.write_text(re.sub(r"/opt/meterhub/meterhub", meterhub_bin(), text))
    p = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True,
                       timeout=60, stdin=subprocess.DEVNULL)
    # Only complaints about this unit count (the host's other units are not ours).
    ours = [ln for ln in (p.stdout + p.stderr).splitlines() if "meterhub.service" in ln]
    assert p.returncode == 0 and not ours, p
