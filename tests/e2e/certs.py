"""Certificates made with the `openssl` CLI, independently of `berth tls`.

The e2e tests use these to act as a company PKI (root -> intermediate -> leaves, RSA and
ECDSA keys, PKCS#1/SEC1/PKCS#8 key files) and to make the bad certificates of the TLS
refusal matrix (another CA, expired, no clientAuth usage). Everything goes through the
`openssl` binary so the files are exactly what an administrator would produce by hand.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import shutil
import subprocess
from pathlib import Path
from typing import Iterable, Sequence

_serial = itertools.count(1000)


class OpensslError(RuntimeError):
    pass


def openssl(*args: str, cwd: Path | None = None) -> str:
    """Run `openssl ARGS...`; raise with its stderr on failure."""
    proc = subprocess.run(
        ["openssl", *args],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if proc.returncode != 0:
        raise OpensslError(f"openssl {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc.stdout


@dataclasses.dataclass
class Cert:
    """One certificate on disk.

    `cert` holds the leaf only; `chain` holds the leaf followed by the intermediates up to
    (not including) the root, which is what a TLS peer presents.
    """

    name: str
    cert: Path
    key: Path
    chain: Path
    root: Path  # the self-signed root this certificate chains to

    def subject(self) -> str:
        return openssl("x509", "-in", str(self.cert), "-noout", "-subject", "-nameopt", "RFC2253").strip()


def gen_key(path: Path, kind: str = "rsa", fmt: str = "pkcs8") -> Path:
    """Make a private key.

    kind: "rsa" (2048), "rsa4096", "ec" (P-256), "ec384" (P-384).
    fmt: "pkcs8" (BEGIN PRIVATE KEY) or "traditional" (BEGIN RSA/EC PRIVATE KEY).
    """
    if kind == "rsa":
        args = ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]
    elif kind == "rsa4096":
        args = ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:4096"]
    elif kind == "ec":
        args = ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]
    elif kind == "ec384":
        args = ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"]
    else:
        raise ValueError(f"unknown key kind {kind!r}")
    openssl("genpkey", *args, "-out", str(path))
    if fmt == "traditional":
        tool = "rsa" if kind.startswith("rsa") else "ec"
        extra = ["-traditional"] if tool == "rsa" else []
        tmp = path.with_suffix(".trad")
        openssl(tool, "-in", str(path), "-out", str(tmp), *extra)
        os.replace(tmp, path)
        # `openssl ec` writes SEC1 ("BEGIN EC PRIVATE KEY") already; check what we got.
    elif fmt != "pkcs8":
        raise ValueError(f"unknown key format {fmt!r}")
    os.chmod(path, 0o600)
    return path


def _ext_section(
    *,
    ca: bool,
    pathlen: int | None = None,
    usages: Sequence[str] = (),
    sans: Iterable[str] = (),
) -> str:
    lines = ["[v3]"]
    if ca:
        bc = "critical,CA:TRUE"
        if pathlen is not None:
            bc += f",pathlen:{pathlen}"
        lines.append(f"basicConstraints = {bc}")
        lines.append("keyUsage = critical,keyCertSign,cRLSign,digitalSignature")
    else:
        lines.append("basicConstraints = critical,CA:FALSE")
        lines.append("keyUsage = critical,digitalSignature,keyEncipherment")
        if usages:
            lines.append("extendedKeyUsage = " + ",".join(usages))
    lines.append("subjectKeyIdentifier = hash")
    lines.append("authorityKeyIdentifier = keyid,issuer")
    san_items = []
    for s in sans:
        kind = "IP" if _is_ip(s) else "DNS"
        san_items.append(f"{kind}:{s}")
    if san_items:
        lines.append("subjectAltName = " + ",".join(san_items))
    return "\n".join(lines) + "\n"


def _is_ip(s: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(s)
        return True
    except ValueError:
        return False


def make_root_ca(directory: Path, name: str = "root", cn: str = "Test Root CA", key_kind: str = "rsa") -> Cert:
    directory.mkdir(parents=True, exist_ok=True)
    key = gen_key(directory / f"{name}-key.pem", key_kind)
    cert = directory / f"{name}.pem"
    ext = directory / f"{name}.ext"
    ext.write_text(
        "[req]\ndistinguished_name = dn\nprompt = no\n[dn]\n"
        + _ext_section(ca=True).replace("authorityKeyIdentifier = keyid,issuer\n", "")
    )
    openssl(
        "req", "-new", "-x509", "-sha256", "-days", "3650",
        "-key", str(key), "-out", str(cert),
        "-subj", f"/O=Berth Tests/CN={cn}",
        "-config", str(ext), "-extensions", "v3",
        "-set_serial", str(next(_serial)),
    )  # fmt: skip
    return Cert(name=name, cert=cert, key=key, chain=cert, root=cert)


def _sign(
    directory: Path,
    name: str,
    csr: Path,
    issuer: Cert,
    ext_text: str,
    *,
    days: int = 365,
    startdate: str | None = None,
    enddate: str | None = None,
) -> Path:
    """Sign a CSR with issuer; with startdate/enddate (YYYYMMDDHHMMSSZ) uses `openssl ca`,
    which, unlike `openssl x509` in OpenSSL 3.0, can set an arbitrary validity window."""
    cert = directory / f"{name}.pem"
    ext = directory / f"{name}.ext"
    ext.write_text(ext_text)
    if startdate is None and enddate is None:
        openssl(
            "x509", "-req", "-sha256", "-days", str(days),
            "-in", str(csr), "-CA", str(issuer.cert), "-CAkey", str(issuer.key),
            "-set_serial", str(next(_serial)),
            "-extfile", str(ext), "-extensions", "v3",
            "-out", str(cert),
        )  # fmt: skip
        return cert
    cadir = directory / f"{name}-cadb"
    if cadir.exists():
        shutil.rmtree(cadir)
    (cadir / "new").mkdir(parents=True)
    (cadir / "index.txt").write_text("")
    (cadir / "serial").write_text(f"{next(_serial):04X}\n")
    conf = cadir / "ca.cnf"
    conf.write_text(
        "[ca]\ndefault_ca = cadef\n"
        "[cadef]\n"
        f"database = {cadir / 'index.txt'}\n"
        f"new_certs_dir = {cadir / 'new'}\n"
        f"serial = {cadir / 'serial'}\n"
        "default_md = sha256\npolicy = anything\nunique_subject = no\ncopy_extensions = none\n"
        "default_days = 365\n"
        "[anything]\ncommonName = supplied\norganizationName = optional\n"
    )
    args = [
        "ca", "-batch", "-notext", "-config", str(conf),
        "-cert", str(issuer.cert), "-keyfile", str(issuer.key),
        "-in", str(csr), "-out", str(cert),
        "-extfile", str(ext), "-extensions", "v3",
    ]  # fmt: skip
    if startdate:
        args += ["-startdate", startdate]
    if enddate:
        args += ["-enddate", enddate]
    openssl(*args)
    return cert


def _csr(directory: Path, name: str, key: Path, cn: str) -> Path:
    csr = directory / f"{name}.csr"
    openssl("req", "-new", "-key", str(key), "-out", str(csr), "-subj", f"/O=Berth Tests/CN={cn}")
    return csr


def _concat(out: Path, parts: Sequence[Path]) -> Path:
    out.write_text("".join(p.read_text() if p.read_text().endswith("\n") else p.read_text() + "\n" for p in parts))
    return out


def make_intermediate(
    directory: Path, name: str, issuer: Cert, cn: str | None = None, key_kind: str = "rsa"
) -> Cert:
    directory.mkdir(parents=True, exist_ok=True)
    key = gen_key(directory / f"{name}-key.pem", key_kind)
    csr = _csr(directory, name, key, cn or f"Test Intermediate {name}")
    cert = _sign(directory, name, csr, issuer, _ext_section(ca=True, pathlen=0), days=1825)
    chain = _concat(directory / f"{name}-chain.pem", [cert, *_intermediates(issuer)])
    return Cert(name=name, cert=cert, key=key, chain=chain, root=issuer.root)


def _intermediates(c: Cert) -> list[Path]:
    """The certs of c's chain file that are not the root (c itself included)."""
    if c.cert == c.root:
        return []
    return [c.chain]


def make_leaf(
    directory: Path,
    name: str,
    issuer: Cert,
    *,
    cn: str,
    usages: Sequence[str] = ("clientAuth",),
    sans: Iterable[str] = (),
    key_kind: str = "rsa",
    key_format: str = "pkcs8",
    days: int = 365,
    startdate: str | None = None,
    enddate: str | None = None,
) -> Cert:
    """A leaf certificate signed by issuer.

    usages: extended key usages, e.g. ("clientAuth",), ("serverAuth",), or both.
    startdate/enddate: YYYYMMDDHHMMSSZ, e.g. an expired certificate with
    startdate="20200101000000Z", enddate="20210101000000Z".
    """
    directory.mkdir(parents=True, exist_ok=True)
    key = gen_key(directory / f"{name}-key.pem", key_kind, key_format)
    csr = _csr(directory, name, key, cn)
    cert = _sign(
        directory,
        name,
        csr,
        issuer,
        _ext_section(ca=False, usages=usages, sans=sans),
        days=days,
        startdate=startdate,
        enddate=enddate,
    )
    chain = _concat(directory / f"{name}-chain.pem", [cert, *_intermediates(issuer)])
    return Cert(name=name, cert=cert, key=key, chain=chain, root=issuer.root)


def docker_cert_dir(directory: Path, client: Cert, ca: Path | None = None) -> Path:
    """Lay out ca.pem, cert.pem (leaf + intermediates) and key.pem as DOCKER_CERT_PATH wants."""
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ca or client.root, directory / "ca.pem")
    shutil.copyfile(client.chain, directory / "cert.pem")
    shutil.copyfile(client.key, directory / "key.pem")
    os.chmod(directory / "key.pem", 0o600)
    return directory


def from_files(name: str, cert: Path, key: Path, root: Path) -> Cert:
    """Wrap existing files (e.g. a CA made by `berth tls init`) so openssl can sign with it."""
    return Cert(name=name, cert=cert, key=key, chain=cert, root=root)


def describe(path: Path) -> str:
    """Human-readable dump of a certificate, for assertion messages."""
    return openssl("x509", "-in", str(path), "-noout", "-subject", "-issuer", "-dates", "-ext", "extendedKeyUsage,subjectAltName")
