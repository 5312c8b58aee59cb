"""Talking to the emulator behind the proxy: forwarding requests unchanged, and the proxy's own
signed calls (reading a function's configuration, a role's policies, a subnet)."""

from __future__ import annotations

import asyncio
import logging
import zlib
from dataclasses import dataclass
from typing import Optional
from urllib.parse import urlencode

import aiohttp
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from multidict import CIMultiDict

log = logging.getLogger("realism.upstream")

# Hop-by-hop headers (RFC 9110 7.6.1) and those aiohttp sets itself.
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
              "trailers", "transfer-encoding", "upgrade", "expect", "content-length"}


@dataclass
class Resp:
    status: int
    headers: CIMultiDict
    body: bytes

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name, default)


class Upstream:
    def __init__(self, base_url: str):
        self.base = base_url.rstrip("/")
        self.session: Optional[aiohttp.ClientSession] = None

    async def start(self):
        connector = aiohttp.TCPConnector(limit=200, force_close=False, enable_cleanup_closed=True)
        self.session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=900),
        )

    async def close(self):
        if self.session is not None:
            await self.session.close()

    def _headers(self, headers) -> CIMultiDict:
        out = CIMultiDict()
        for k, v in headers.items():
            if k.lower() not in HOP_BY_HOP:
                out.add(k, v)
        return out

    async def open(self, method: str, path_qs: str, headers, body: bytes) -> aiohttp.ClientResponse:
        """Forwards a request unchanged (Host included); the caller reads and releases the answer."""
        return await self.session.request(
            method, self.base + path_qs, headers=self._headers(headers), data=body if body else None,
            allow_redirects=False, skip_auto_headers=("Content-Type", "User-Agent", "Accept", "Accept-Encoding"),
        )

    async def call(self, method: str, path_qs: str, headers, body: bytes) -> Resp:
        """Forwards a request and reads the whole answer (decompressed, so that it can be rewritten)."""
        async with await self.open(method, path_qs, headers, body) as r:
            data = await r.read()
            out = CIMultiDict(r.headers)
            encoding = out.get("Content-Encoding", "").lower()
            if encoding in ("gzip", "deflate") and data:
                try:
                    data = zlib.decompress(data, 16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS)
                    del out["Content-Encoding"]
                except zlib.error:
                    pass
            return Resp(r.status, out, data)

    async def signed(self, service: str, region: str, access_key: str, method: str, path: str,
                     params: Optional[dict] = None, form: Optional[dict] = None, json_body: Optional[bytes] = None,
                     headers: Optional[dict] = None) -> Optional[Resp]:
        """One of the proxy's own calls, SigV4-signed with the caller's access key (the emulators
        do not check the secret).  None if the emulator cannot be reached."""
        url = self.base + path
        if params:
            url += "?" + urlencode(params)
        hdrs = dict(headers or {})
        body = b""
        if form is not None:
            body = urlencode(form).encode()
            hdrs["Content-Type"] = "application/x-www-form-urlencoded; charset=utf-8"
        elif json_body is not None:
            body = json_body
        req = AWSRequest(method=method, url=url, data=body, headers=hdrs)
        SigV4Auth(Credentials(access_key or "realism", "realism"), service, region or "us-east-1").add_auth(req)
        try:
            async with self.session.request(method, url, headers=dict(req.headers.items()), data=body or None,
                                            allow_redirects=False) as r:
                return Resp(r.status, CIMultiDict(r.headers), await r.read())
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as e:
            log.warning("internal call %s %s failed: %s", method, path, e)
            return None
