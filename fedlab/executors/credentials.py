"""The deployment's credentials for remote TFF workers: mutual TLS under one private CA.

A worker (``python -m fedlab.worker``) accepts a connection only from a driver presenting a
certificate signed by the deployment's CA for client use; the driver accepts the worker only if
its certificate is signed by the same CA for the host name it dialled. ``python -m
fedlab.credentials DIR --hosts h1,h2`` makes a CA and one key pair for the workers (valid for
those hosts) and one for the drivers. Each process finds its files in arguments, config keys or
the environment variables ``FEDLAB_TLS_CA``, ``FEDLAB_TLS_CERT`` and ``FEDLAB_TLS_KEY``.
"""

import argparse
import datetime
import ipaddress
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from fedlab.errors import ConfigError

ENVIRONMENT = {"ca": "FEDLAB_TLS_CA", "cert": "FEDLAB_TLS_CERT", "key": "FEDLAB_TLS_KEY"}
VALID_DAYS = 365


@dataclass(frozen=True)
class TlsFiles:
    """PEM files: the deployment's CA certificate, this side's certificate and private key."""

    ca: Path
    cert: Path
    key: Path

    @classmethod
    def find(cls, ca: str | None = None, cert: str | None = None, key: str | None = None,
             where: str = "FEDLAB_TLS_CA, FEDLAB_TLS_CERT and FEDLAB_TLS_KEY") -> "TlsFiles":
        """The files given, else named by the environment; ConfigError naming what is missing."""
        given = {"ca": ca, "cert": cert, "key": key}
        paths = {name: value or os.environ.get(ENVIRONMENT[name]) for name, value in given.items()}
        missing = [name for name, path in paths.items() if not path]
        if missing:
            raise ConfigError(f"TLS credentials missing ({', '.join(missing)}): give {where} "
                              "(python -m fedlab.credentials DIR --hosts ... makes them)")
        for name, path in paths.items():
            if not os.access(path, os.R_OK):
                raise ConfigError(f"TLS {name} file {path} cannot be read")
        return cls(**{name: Path(path) for name, path in paths.items()})

    def server_context(self) -> ssl.SSLContext:
        """A worker's TLS context: its certificate, and a CA-signed client certificate required."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(self.ca))
        context.verify_mode = ssl.CERT_REQUIRED
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(str(self.cert), str(self.key))
        context.set_alpn_protocols(["h2"])  # gRPC's clients insist on HTTP/2 by ALPN
        return context

    def channel_credentials(self):
        """A driver's gRPC credentials: its certificate, the worker's checked against the CA."""
        import grpc

        return grpc.ssl_channel_credentials(
            root_certificates=self.ca.read_bytes(), private_key=self.key.read_bytes(),
            certificate_chain=self.cert.read_bytes())


def _write_private(path: Path, data: bytes) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)


def _subject_alternative_names(hosts: list[str]):
    from cryptography import x509

    names = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def make_credentials(folder: Path, hosts: list[str]) -> None:
    """Write a CA and worker/driver key pairs into ``folder`` (created private to the user).

    ``ca.pem`` (every side), ``ca.key`` (keep it off the workers), ``worker.pem``/``worker.key``
    (valid for ``hosts``, localhost and the loopback addresses), ``driver.pem``/``driver.key``.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    now = datetime.datetime.now(datetime.UTC)

    def issue(name: str, key, issuer_name, issuer_key, extensions):
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
                   .issuer_name(issuer_name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=VALID_DAYS)))
        for extension, critical in extensions:
            builder = builder.add_extension(extension, critical=critical)
        return builder.sign(issuer_key, hashes.SHA256())

    def save(stem: str, key, certificate) -> None:
        _write_private(folder / f"{stem}.key", key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        _write_private(folder / f"{stem}.pem",
                       certificate.public_bytes(serialization.Encoding.PEM))

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fedlab deployment CA")])
    ca = issue("fedlab deployment CA", ca_key, ca_name, ca_key,
               [(x509.BasicConstraints(ca=True, path_length=0), True),
                (x509.KeyUsage(digital_signature=False, content_commitment=False,
                               key_encipherment=False, data_encipherment=False,
                               key_agreement=False, key_cert_sign=True, crl_sign=True,
                               encipher_only=False, decipher_only=False), True)])
    save("ca", ca_key, ca)
    roles = {
        "worker": (ExtendedKeyUsageOID.SERVER_AUTH,
                   [*hosts, "localhost", "127.0.0.1", "::1"]),
        "driver": (ExtendedKeyUsageOID.CLIENT_AUTH, ["fedlab-driver"]),
    }
    for stem, (usage, names) in roles.items():
        key = ec.generate_private_key(ec.SECP256R1())
        certificate = issue(f"fedlab {stem}", key, ca_name, ca_key, [
            (x509.BasicConstraints(ca=False, path_length=None), True),
            (x509.ExtendedKeyUsage([usage]), False),
            (_subject_alternative_names(list(dict.fromkeys(names))), False)])
        save(stem, key, certificate)


def main(argv: list[str] | None = None) -> None:
    """``python -m fedlab.credentials DIR --hosts h1,h2``."""
    parser = argparse.ArgumentParser(
        prog="python -m fedlab.credentials",
        description="Make a deployment's CA and key pairs for remote TFF workers and drivers.")
    parser.add_argument("folder", type=Path)
    parser.add_argument("--hosts", default="",
                        help="comma-separated names or addresses the drivers dial the workers by")
    args = parser.parse_args(argv)
    make_credentials(args.folder, [h for h in args.hosts.split(",") if h])
    print(f"wrote {args.folder}/ca.pem, worker.pem/.key, driver.pem/.key (and ca.key: keep it "
          "apart). On each worker: FEDLAB_TLS_CA=ca.pem FEDLAB_TLS_CERT=worker.pem "
          "FEDLAB_TLS_KEY=worker.key; on the driver the same with driver.pem/driver.key.")


if __name__ == "__main__":
    main()
