"""The AI-Trader HTTP client: httpx, without a cookie jar, over asyncio streams.

httpx's own transport reaches its sockets through anyio: every read and write opens an anyio
cancel scope for its timeout and asks sniffio which event loop runs, which py-spy showed as about
a fifth of an idle poll's client CPU (issue 11). httpcore takes any network backend
(`httpcore.AsyncNetworkBackend`, its documented extension point) and httpx any transport
(`httpx.AsyncBaseTransport`), so this keeps httpcore's pool and HTTP/1.1 and httpx's client, and
swaps only the layer under them: asyncio's streams, with `asyncio.timeout` for the deadlines.
Errors are raised as the same httpx exceptions httpx's own transport raises.

The client keeps no cookies: one client speaks for every linked agent, so a cookie one agent's
answer set would ride on the next agent's requests (AI-Trader authenticates by bearer token and
sets none). httpx offers no switch for its jar, which it fills from every answer through
urllib's cookie machinery: about a sixth of a call's client CPU (py-spy, issue 11).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import urllib.request
from collections.abc import AsyncIterator, Iterable
from typing import Any, cast

import httpcore
import httpx

# httpcore's errors as httpx's own transport maps them, the most specific first.
_MAPPED: tuple[tuple[type[Exception], type[httpx.TransportError]], ...] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.ProxyError, httpx.ProxyError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.ProtocolError, httpx.ProtocolError),
)


_HOLD_BYTES = 64 * 1024  # a larger body goes out as it is written, with its write deadline


def _as_httpx(exc: Exception) -> httpx.TransportError | None:
    for theirs, ours in _MAPPED:
        if isinstance(exc, theirs):
            return ours(str(exc))
    return None


class AsyncioStream(httpcore.AsyncNetworkStream):
    """One connection. A read at end of stream returns b"", as httpcore expects.

    Writes are held until the read that follows them: httpcore writes a request's head and its
    body apart, and each write to a socket is a system call that wakes the server (two per
    heartbeat, about 7 % of an idle poll in py-spy). HTTP/1.1 reads the answer after every
    request, so the two go out together when the read starts."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._held: list[bytes] = []
        self._held_bytes = 0
        self._write_timeout: float | None = None

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        if self._held:
            with contextlib.suppress(httpcore.WriteError):
                # As httpcore does with a failed write: the read says what became of the request
                # (a server that closed early may still have answered).
                await self._flush()
        try:
            async with asyncio.timeout(timeout):
                return await self._reader.read(max_bytes)
        except TimeoutError as exc:  # before OSError, of which it is a subclass
            raise httpcore.ReadTimeout(str(exc) or "read timed out") from exc
        except OSError as exc:
            raise httpcore.ReadError(str(exc) or type(exc).__name__) from exc

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        self._held.append(buffer)
        self._held_bytes += len(buffer)
        self._write_timeout = timeout
        if self._held_bytes >= _HOLD_BYTES:
            await self._flush()

    async def _flush(self) -> None:
        data = b"".join(self._held)
        self._held.clear()
        self._held_bytes = 0
        try:
            self._writer.write(data)
            async with asyncio.timeout(self._write_timeout):
                await self._writer.drain()
        except TimeoutError as exc:
            raise httpcore.WriteTimeout(str(exc) or "write timed out") from exc
        except OSError as exc:
            raise httpcore.WriteError(str(exc) or type(exc).__name__) from exc

    async def aclose(self) -> None:
        self._held.clear()
        self._writer.close()

    async def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                await self._writer.start_tls(ssl_context, server_hostname=server_hostname)
        except TimeoutError as exc:
            self._writer.close()
            raise httpcore.ConnectTimeout(str(exc) or "TLS handshake timed out") from exc
        except OSError as exc:  # ssl.SSLError (a failed certificate check) included
            self._writer.close()
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from exc
        return self

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            # httpcore asks this of an idle pooled connection before reusing it: true when the
            # server closed it or the connection failed. asyncio has already read whatever
            # arrived, so its stream state answers without the poll() system call httpcore makes.
            # Bytes a server sent unasked sit in the buffer unseen here (as in anyio's buffer
            # under httpx's own transport): the next answer then fails to parse, a protocol error.
            return self._writer.is_closing() or self._reader.at_eof() or self._reader.exception() is not None
        if info == "client_addr":
            return self._writer.get_extra_info("sockname")
        if info == "server_addr":
            return self._writer.get_extra_info("peername")
        return self._writer.get_extra_info(info)  # "ssl_object", "socket"


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(
                    host, port, local_addr=(local_address, 0) if local_address else None
                )
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(str(exc) or "connect timed out") from exc
        except OSError as exc:
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from exc
        sock = writer.get_extra_info("socket")
        for option in socket_options or ():  # asyncio sets TCP_NODELAY itself
            sock.setsockopt(*option)
        return AsyncioStream(reader, writer)

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.UnsupportedProtocol("the AI-Trader transport connects over TCP only")

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class _ResponseStream(httpx.AsyncByteStream):
    def __init__(self, stream: AsyncIterator[bytes]) -> None:
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for part in self._stream:
                yield part
        except Exception as exc:
            mapped = _as_httpx(exc)
            if mapped is None:
                raise
            raise mapped from exc

    async def aclose(self) -> None:
        closing = getattr(self._stream, "aclose", None)
        if closing is not None:
            await closing()


class AsyncioTransport(httpx.AsyncBaseTransport):
    """HTTP/1.1 through httpcore's pool on asyncio streams; `limits` as httpx's own transport
    takes them. TLS is verified as httpx verifies it (certifi, or SSL_CERT_FILE / SSL_CERT_DIR)."""

    def __init__(self, limits: httpx.Limits, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context or httpx.create_ssl_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True,
            http2=False,
            network_backend=AsyncioBackend(),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        core = httpcore.Request(
            method=request.method,
            url=httpcore.URL(scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path),
            headers=request.headers.raw,
            content=cast(AsyncIterator[bytes], request.stream),
            extensions=request.extensions,
        )
        try:
            answer = await self._pool.handle_async_request(core)
        except Exception as exc:
            mapped = _as_httpx(exc)
            if mapped is None:
                raise
            raise mapped from exc
        return httpx.Response(
            status_code=answer.status,
            headers=answer.headers,
            stream=_ResponseStream(cast(AsyncIterator[bytes], answer.stream)),
            extensions=answer.extensions,
        )

    async def aclose(self) -> None:
        await self._pool.aclose()


def transport_for(base_url: str, limits: httpx.Limits) -> AsyncioTransport | None:
    """This transport for AI-Trader, or None (httpx's own) when an environment proxy applies to
    it: httpx honours HTTP(S)_PROXY / ALL_PROXY / NO_PROXY only with its own transport."""
    proxies, url = urllib.request.getproxies(), httpx.URL(base_url)
    if (proxies.get(url.scheme) or proxies.get("all")) and not urllib.request.proxy_bypass(url.host):
        return None
    return AsyncioTransport(limits)


class NoCookies(httpx.Cookies):
    """A jar that keeps nothing and sends nothing."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None

    def set_cookie_header(self, request: httpx.Request) -> None:
        return None

    def set(self, name: str, value: str, domain: str = "", path: str = "/") -> None:
        raise TypeError("the AI-Trader client keeps no cookies")


class CookielessClient(httpx.AsyncClient):
    """`httpx.AsyncClient` whose `cookies` is always an empty `NoCookies`: httpx reads and
    fills the jar through this property."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._no_cookies = NoCookies()

    @property
    def cookies(self) -> httpx.Cookies:
        return self._no_cookies

    @cookies.setter
    def cookies(self, cookies: object) -> None:
        raise TypeError("the AI-Trader client keeps no cookies")
