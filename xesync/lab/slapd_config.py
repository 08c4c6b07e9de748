"""What one lab slapd needs before it runs: OpenLDAP's installed files, its ``slapd.conf``, a certificate.

:mod:`xesync.lab.slapd` runs the instance; this module finds OpenLDAP's pieces on the machine, writes
the old-style ``slapd.conf`` text and makes the self-signed certificate, and owns :class:`SlapdError`
(both modules raise it; :mod:`xesync.lab.slapd` re-exports it).

The database is ``mdb`` with the ``memberof`` overlay (so entries carry ``memberOf`` as OpenLDAP
really serves it: operational, direct groups only) and ``refint``. The service account (``bind_dn``)
is the database's ``rootdn``: it may read (and, for tests that change the directory mid-run, write)
everything. Other authenticated users may read; anonymous clients may only bind. The certificate,
made by the ``openssl`` CLI, names ``127.0.0.1``/``localhost``.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

DATA = Path(__file__).parent / "data"
AD_SCHEMA = DATA / "xesync-ad.schema"
SLAPD_CANDIDATES = (Path("/usr/sbin/slapd"), Path("/usr/libexec/slapd"), Path("/usr/local/libexec/slapd"))
SCHEMA_DIRS = (Path("/etc/ldap/schema"), Path("/etc/openldap/schema"), Path("/usr/local/etc/openldap/schema"))
MODULE_DIRS = (
    Path("/usr/lib/ldap"),
    Path("/usr/lib64/openldap"),
    Path("/usr/lib/openldap"),
    Path("/usr/libexec/openldap"),
    Path("/usr/local/libexec/openldap"),
)


class SlapdError(RuntimeError):
    """slapd could not be found, configured, started or loaded; the message carries its stderr."""


def find_slapd() -> Path | None:
    """The ``slapd`` binary, or ``None`` when OpenLDAP is not installed."""
    on_path = shutil.which("slapd")
    if on_path:
        return Path(on_path)
    return next((p for p in SLAPD_CANDIDATES if p.is_file()), None)


def render_config(workdir: Path, *, base_dn: str, bind_dn: str, password: str, ldaps: bool) -> str:
    """The ``slapd.conf`` of one instance whose files live in ``workdir``.

    :param workdir: the instance's private directory (``db/``, ``tls/``, the pid and args files).
    :param base_dn: the database suffix.
    :param bind_dn: the service account, made the ``rootdn``.
    :param password: its password (the ``rootpw``).
    :param ldaps: name the certificate in ``workdir/tls`` for the TLS listener and StartTLS.
    """
    schema_dir = _first_dir(SCHEMA_DIRS, "core.schema")
    if schema_dir is None:
        raise SlapdError(f"no OpenLDAP schema directory found (looked in {', '.join(map(str, SCHEMA_DIRS))})")
    module_dir = _first_dir(MODULE_DIRS, "back_mdb.la") or _first_dir(MODULE_DIRS, "back_mdb.so")
    # refint is optional: without it, deleting a user leaves a dangling member value, which the
    # resolver tolerates.
    refint = module_dir is None or any((module_dir / f"refint{ext}").exists() for ext in (".la", ".so"))
    lines = [
        "# Written by xesync.lab.slapd for one throwaway instance.",
        *(
            f'include "{schema_dir / name}"'
            for name in ("core.schema", "cosine.schema", "inetorgperson.schema")
        ),
        f'include "{AD_SCHEMA}"',
        f'pidfile "{workdir / "slapd.pid"}"',
        f'argsfile "{workdir / "slapd.args"}"',
    ]
    if module_dir is not None:  # else the backends and overlays are built in
        lines += [f'modulepath "{module_dir}"', "moduleload back_mdb", "moduleload memberof"]
        if refint:
            lines.append("moduleload refint")
    if ldaps:
        lines += [
            f'TLSCertificateFile "{workdir / "tls" / "cert.pem"}"',
            f'TLSCertificateKeyFile "{workdir / "tls" / "key.pem"}"',
        ]
    lines += [
        "",
        "database mdb",
        f'suffix "{base_dn}"',
        f'rootdn "{bind_dn}"',
        # The config file is mode 0600 inside a private temporary directory.
        f"rootpw {password}",
        f'directory "{workdir / "db"}"',
        "maxsize 67108864",
        "index objectClass eq",
        "index mail,uid,member eq",
        "overlay memberof",
        "memberof-group-oc groupOfNames",
        "memberof-member-ad member",
        "memberof-memberof-ad memberOf",
        "memberof-refint TRUE",
    ]
    if refint:
        lines += ["overlay refint", "refint_attributes member"]
    lines += [
        "access to attrs=userPassword by self write by anonymous auth by * none",
        "access to * by users read by * none",
        "",
    ]
    return "\n".join(lines)


def make_certificate(directory: Path, host: str) -> None:
    """A self-signed certificate for ``host`` and ``localhost`` with the ``openssl`` CLI."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise SlapdError("ldaps=True needs the openssl command: apt-get install openssl")
    directory.mkdir(mode=0o700)
    argv = [
        openssl,
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "2",
        "-subj",
        f"/CN={host}",
        "-addext",
        f"subjectAltName=IP:{host},DNS:localhost",
        "-keyout",
        str(directory / "key.pem"),
        "-out",
        str(directory / "cert.pem"),
    ]
    result = subprocess.run(argv, capture_output=True, check=False, timeout=30)
    if result.returncode != 0:
        raise SlapdError(f"openssl could not make a certificate: {result.stderr.decode(errors='replace')}")


def _first_dir(candidates: tuple[Path, ...], marker: str) -> Path | None:
    return next((d for d in candidates if (d / marker).exists()), None)
