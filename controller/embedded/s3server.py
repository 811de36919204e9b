"""A real S3 server process-in-thread (moto's server mode) on a free loopback port."""

from __future__ import annotations

from dataclasses import dataclass

from controller.embedded.ports import free_port


@dataclass
class S3Server:
    """Speaks S3 over HTTP; the project's own boto3 code reaches it through endpoint_url."""

    port: int = 0

    def __post_init__(self) -> None:
        self.port = self.port or free_port()
        self._server = None

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """boto3's own environment variables pointing at this server."""
        return {
            "AWS_ENDPOINT_URL_S3": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def start(self) -> S3Server:
        from moto.server import ThreadedMotoServer

        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> S3Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
