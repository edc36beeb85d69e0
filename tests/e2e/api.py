"""A tiny HTTP client over `http.client`, so that tests control every byte and header they send
(malformed JSON, wrong content types, lying lengths) and see every header they get back."""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


class Api:
    def __init__(self, base_url: str, timeout: float = 30.0) -> None:
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname, parts.port
        self.timeout = timeout

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        json_body: Any = None,
        headers: dict[str, str] | None = None,
        chunks: list[bytes] | None = None,
    ) -> Reply:
        """`chunks` sends the body with chunked transfer encoding (no Content-Length)."""
        headers = dict(headers or {})
        if json_body is not None:
            body = json.dumps(json_body).encode()
            headers.setdefault("Content-Type", "application/json")
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            if chunks is not None:
                headers["Transfer-Encoding"] = "chunked"
                conn.request(method, path, body=iter(chunks), headers=headers, encode_chunked=True)
            else:
                conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
        finally:
            conn.close()

    def get(self, path: str, **kwargs) -> Reply:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs) -> Reply:
        return self.request("POST", path, **kwargs)

    def order(self, user_id, flash_sale_id, quantity: int = 1, **kwargs) -> Reply:
        return self.post(
            "/api/orders",
            json_body={"user_id": str(user_id), "flash_sale_id": str(flash_sale_id), "quantity": quantity},
            **kwargs,
        )
