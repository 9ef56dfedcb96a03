"""TLS and mutual TLS for every reelvec server and for the channels between them
(docs/reliability.md). Off unless configured; `reelvec up` binds everything to loopback instead.

Settings (every service, reelvec/config.py: flags or REELVEC_TLS_*):
- tls_cert + tls_key: the process serves TLS with this certificate, and presents the same one
  when it calls other services (for their mutual TLS): one identity per process.
- tls_client_ca: clients must present a certificate signed by this CA (mutual TLS).
- tls_ca: the CA that the certificates of the services this process calls are checked against.
Files are PEM. A service that serves TLS refuses plaintext calls, and one with a client CA
refuses callers without a certificate.
"""

import dataclasses
from pathlib import Path

import grpc


def _read(path: str) -> bytes | None:
    return Path(path).read_bytes() if path else None


@dataclasses.dataclass(frozen=True)
class TLS:
    cert: str = ""
    key: str = ""
    client_ca: str = ""
    ca: str = ""

    @classmethod
    def of(cls, settings) -> "TLS":
        return cls(settings.tls_cert, settings.tls_key, settings.tls_client_ca, settings.tls_ca)

    def server_credentials(self) -> grpc.ServerCredentials | None:
        if not (self.cert and self.key):
            if self.client_ca:
                raise SystemExit("tls_client_ca needs tls_cert and tls_key: mutual TLS is TLS first")
            return None
        client_ca = _read(self.client_ca)
        return grpc.ssl_server_credentials(
            [(_read(self.key), _read(self.cert))], root_certificates=client_ca, require_client_auth=client_ca is not None
        )

    def channel_credentials(self) -> grpc.ChannelCredentials | None:
        if not self.ca:
            return None
        return grpc.ssl_channel_credentials(
            root_certificates=_read(self.ca), private_key=_read(self.key), certificate_chain=_read(self.cert)
        )
