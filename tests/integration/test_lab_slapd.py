"""The lab's SlapdServer: memberof upkeep, start-up failures and stopping without leftovers.

The resolver's behaviour against this slapd lives in test_ldap_directory.py.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import ldap3
import pytest
from ldap_lab import LAB_LDIF, PASSWORD, PMP_GROUP

from xesync.lab.slapd import SlapdError, SlapdServer


@pytest.mark.slapd
def test_slapd_is_stopped_by_its_pid_and_leaves_nothing(fresh_slapd):
    """stop() ends the slapd process it started, frees the port and removes its directory."""
    pid, port, workdir = fresh_slapd.pid, fresh_slapd.port, fresh_slapd._workdir
    assert pid is not None
    assert workdir is not None
    assert workdir.is_dir()
    fresh_slapd.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0
    assert not workdir.exists()
    with pytest.raises(SlapdError):
        _ = fresh_slapd.url


@pytest.mark.slapd
def test_slapd_maintains_memberof_for_nested_groups(lab_slapd):
    """The memberof overlay marks users and nested groups, as OpenLDAP serves it in production."""
    conn = lab_slapd.connection()
    try:
        conn.search(
            "cn=video-team,ou=groups,dc=lab,dc=example",
            "(objectClass=*)",
            search_scope=ldap3.BASE,
            attributes=["memberOf"],
        )
        assert conn.response[0]["attributes"]["memberOf"] == [PMP_GROUP]
    finally:
        conn.unbind()


@pytest.mark.slapd
def test_slapd_reports_a_bad_ldif_entry(tmp_path, slapd_installed):
    """An entry slapd rejects stops the start with an error naming that entry."""
    ldif = tmp_path / "bad.ldif"
    ldif.write_text(
        "dn: dc=lab,dc=example\nobjectClass: dcObject\nobjectClass: organization\ndc: lab\no: x\n\n"
        "dn: uid=x,dc=lab,dc=example\nobjectClass: inetOrgPerson\nuid: x\ncn: x\nsn: x\nnoSuchAttribute: y\n",
        encoding="utf-8",
    )
    server = SlapdServer(
        ldif=ldif, base_dn="dc=lab,dc=example", bind_dn="cn=svc,dc=lab,dc=example", password="x"
    )
    with pytest.raises(SlapdError, match="uid=x,dc=lab,dc=example"):
        server.start()
    assert not server.running


@pytest.mark.slapd
def test_slapd_start_failure_carries_its_output(slapd_installed):
    """When slapd cannot start (its port is taken), the error quotes slapd's own message."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        server = SlapdServer(
            ldif=LAB_LDIF,
            base_dn="dc=lab,dc=example",
            bind_dn="cn=svc-xesync,ou=service,dc=lab,dc=example",
            password=PASSWORD,
            port=taken.getsockname()[1],
        )
        with pytest.raises(SlapdError, match="Address already in use"):
            server.start()
    assert not server.running


@pytest.mark.slapd
def test_slapd_dies_with_a_killed_lab(slapd_installed):
    """When the process that started slapd is SIGKILLed, slapd goes too instead of living on."""
    code = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from xesync.lab.slapd import SlapdServer\n"
        f"s = SlapdServer(ldif=Path({str(LAB_LDIF)!r}), base_dn='dc=lab,dc=example',\n"
        "    bind_dn='cn=svc-xesync,ou=service,dc=lab,dc=example', password='pw').start()\n"
        "sys.stdout.write(f'SLAPD {s.pid} {s._workdir}\\n'); sys.stdout.flush()\n"
        "time.sleep(60)\n"
    )
    lab = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        line = lab.stdout.readline()
        while line and not line.startswith("SLAPD "):
            line = lab.stdout.readline()
        _, pid, workdir = line.split()
    finally:
        lab.kill()
        lab.wait(timeout=10)
        lab.stdout.close()
    deadline = time.monotonic() + 5
    while _process_state(int(pid)) not in {"Z", "gone"} and time.monotonic() < deadline:
        time.sleep(0.02)
    shutil.rmtree(workdir, ignore_errors=True)  # the killed lab could not remove it
    assert _process_state(int(pid)) in {"Z", "gone"}


def _process_state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return "gone"


def test_slapd_missing_binary_is_a_clear_error(tmp_path):
    """A slapd binary that does not exist gives SlapdError, not a traceback from subprocess."""
    server = SlapdServer(
        ldif=tmp_path / "unused.ldif",
        base_dn="dc=lab,dc=example",
        bind_dn="cn=svc,dc=lab,dc=example",
        password="x",
        slapd=tmp_path / "no-slapd",
    )
    (tmp_path / "unused.ldif").write_text("dn: dc=lab,dc=example\nobjectClass: dcObject\ndc: lab\n")
    with pytest.raises(SlapdError, match="no-slapd"):
        server.start()
