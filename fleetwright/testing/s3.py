"""moto's S3-compatible server on a loopback address: the `object` state backend's bucket in
tests, the bench and the multi-host stack (its request log is quieted: a line per request)."""

from __future__ import annotations

import logging
import socket
from typing import Any

__all__ = ["S3Server"]


def _free_port(address: str) -> int:
    with socket.socket() as sock:
        sock.bind((address, 0))
        return int(sock.getsockname()[1])


class S3Server:
    """moto's threaded S3 server on `address` (stoppable, restartable on the same port)."""

    def __init__(self, address: str = "127.0.0.1", port: int | None = None) -> None:
        self.address = address
        self.port = port or _free_port(address)
        self._server: Any = None

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.port}"

    def start(self) -> S3Server:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        server = ThreadedMotoServer(ip_address=self.address, port=self.port, verbose=False)
        server.start()
        self._server = server
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def create_bucket(self, name: str, **client_args: Any) -> str:
        """Create the bucket `name` (credentials from the environment unless given)."""
        import boto3

        boto3.session.Session().client("s3", endpoint_url=self.url, **client_args).create_bucket(
            Bucket=name
        )
        return name
