"""A throwaway certificate for the benchmark's TLS listener.

``make(directory)`` writes a CA and a server certificate for ``127.0.0.1`` and
``localhost`` with the ``trustme`` package when it is installed, otherwise a
self-signed certificate with the ``openssl`` command; clients trust
``cafile``. Raises RuntimeError when neither is available.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass

HOSTS = ("127.0.0.1", "localhost")


@dataclass(frozen=True)
class Certificate:
    """Paths of the files ``make`` wrote, and which tool made them."""

    certfile: str
    keyfile: str
    cafile: str
    tool: str


def make(directory: str) -> Certificate:
    """Write a server certificate and key plus the CA clients must trust."""
    try:
        import trustme
    except ImportError:
        return _openssl(directory)
    ca = trustme.CA()
    leaf = ca.issue_cert(*HOSTS)
    certfile = os.path.join(directory, "server.pem")
    keyfile = os.path.join(directory, "server.key")
    cafile = os.path.join(directory, "ca.pem")
    leaf.cert_chain_pems[0].write_to_path(certfile)
    for pem in leaf.cert_chain_pems[1:]:
        pem.write_to_path(certfile, append=True)
    leaf.private_key_pem.write_to_path(keyfile)
    ca.cert_pem.write_to_path(cafile)
    return Certificate(certfile, keyfile, cafile, f"trustme {getattr(trustme, '__version__', '')}")


def _openssl(directory: str) -> Certificate:
    binary = shutil.which("openssl")
    if binary is None:
        raise RuntimeError(
            "no way to make a certificate: `pip install trustme` or install openssl"
        )
    certfile = os.path.join(directory, "server.pem")
    keyfile = os.path.join(directory, "server.key")
    san = ",".join(f"IP:{h}" if h[0].isdigit() else f"DNS:{h}" for h in HOSTS)
    cmd = [
        binary, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-nodes", "-days", "2", "-subj", "/CN=localhost", "-keyout", keyfile, "-out", certfile,
        "-addext", f"subjectAltName={san}", "-addext", "basicConstraints=critical,CA:TRUE",
    ]  # fmt: skip
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(f"openssl failed: {proc.stderr.strip()[-500:]}")
    # Self-signed: the server certificate is its own CA.
    return Certificate(certfile, keyfile, certfile, "openssl (self-signed)")
