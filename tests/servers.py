"""Real servers on loopback for the remote-store tests: a static HTTP server,
an S3 server (moto in server mode) and a flaky proxy in front of either.

Every server binds 127.0.0.1 on a free port, runs in a daemon thread and is
stopped by its context manager, so a test can never leave one behind.
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import os
import re
import threading
import time
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "upgrade"}


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


class _NoListing(_Quiet):
    """Serves files but answers 404 for directories, as a plain object
    store's website endpoint or a web server without autoindex does."""

    def send_head(self):
        if os.path.isdir(self.translate_path(self.path)):
            self.send_error(404, "no directory listings here")
            return None
        return super().send_head()


class _Counting(_Quiet):
    """Counts the body bytes it sends, per path, in ``sent`` (shared)."""

    sent: dict[str, int]

    def copyfile(self, source, outputfile) -> None:
        data = source.read()
        self.sent[self.path] = self.sent.get(self.path, 0) + len(data)
        outputfile.write(data)


@contextlib.contextmanager
def counting_http_server(directory: str | Path) -> Iterator[tuple[str, dict]]:
    """``directory`` over HTTP; yields the base URL and a dict path -> body
    bytes sent, to measure what a read downloads."""
    sent: dict[str, int] = {}
    handler = type("Counting", (_Counting,), {"sent": sent})
    with _serve(functools.partial(handler, directory=str(directory))) as server:
        yield f"http://127.0.0.1:{server.server_address[1]}", sent


@contextlib.contextmanager
def _serve(handler) -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def http_server(directory: str | Path, listing: bool = True) -> Iterator[str]:
    """``directory`` over HTTP (Python's http.server); yields the base URL."""
    handler = functools.partial(
        _Quiet if listing else _NoListing, directory=str(directory)
    )
    with _serve(handler) as server:
        yield f"http://127.0.0.1:{server.server_address[1]}"


@contextlib.contextmanager
def s3_server() -> Iterator[str]:
    """moto's S3 in server mode; yields the endpoint URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def upload(endpoint: str, directory: str | Path, bucket: str, prefix: str) -> None:
    """Put every file under ``directory`` into ``bucket`` below ``prefix``."""
    import boto3

    s3 = boto3.client("s3", endpoint_url=endpoint)
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket=bucket)
    base = Path(directory)
    for file in sorted(p for p in base.rglob("*") if p.is_file()):
        key = f"{prefix}/{file.relative_to(base.parent).as_posix()}"
        s3.upload_file(str(file), bucket, key)


class FlakyProxy:
    """A reverse proxy that fails some requests on a fixed schedule.

    Request n (counting from 1) gets a 500 if n % ``fail_every`` == 0, has its
    connection dropped without an answer if n % ``drop_every`` == 0, and is
    held for ``stall`` seconds first if n % ``stall_every`` == 0. One path is
    failed at most ``max_faults_per_path`` times, so retries must succeed.
    ``always`` fails every request (500), for a server that never recovers.
    It counts requests, faults and the most requests in flight at once
    (:attr:`max_in_flight`).
    """

    def __init__(
        self,
        upstream: str,
        fail_every: int = 0,
        drop_every: int = 0,
        stall_every: int = 0,
        stall: float = 0.0,
        max_faults_per_path: int = 2,
        always: bool = False,
        client_timeout: float | None = None,
    ) -> None:
        self.upstream = upstream.removeprefix("http://")
        self.fail_every, self.drop_every = fail_every, drop_every
        self.stall_every, self.stall = stall_every, stall
        self.max_faults = max_faults_per_path
        self.always = always
        self.lock = threading.Lock()
        self.client_timeout = client_timeout
        self.requests = self.faults = 0
        self.spans: list[tuple[float, float]] = []
        self.faults_by_path: dict[str, int] = {}

    @property
    def max_in_flight(self) -> int:
        """The most requests in flight at once, as the client saw them.

        A client gives up on a request after ``client_timeout`` seconds and
        may send the next one while this proxy is still relaying the first
        to a slow upstream; the proxy would count both. Each request's span
        is therefore cut at 0.9 × the client's timeout: what is left lies
        within the time the client itself held the request open."""
        cut = (self.client_timeout or float("inf")) * 0.9
        events = []
        for start, end in self.spans:
            events += [(start, 1), (min(end, start + cut), -1)]
        most = now = 0
        for _, step in sorted(events):  # an end before a start at one instant
            now += step
            most = max(most, now)
        return most

    def _plan(self, path: str) -> str:
        with self.lock:
            self.requests += 1
            n = self.requests
            if self.always:
                self.faults += 1
                return "fail"
            if self.faults_by_path.get(path, 0) >= self.max_faults:
                return "ok"
            for kind, every in (
                ("fail", self.fail_every),
                ("drop", self.drop_every),
                ("stall", self.stall_every),
            ):
                if every and n % every == 0:
                    self.faults += 1
                    self.faults_by_path[path] = self.faults_by_path.get(path, 0) + 1
                    return kind
            return "ok"

    def _done(self, start: float) -> None:
        with self.lock:
            self.spans.append((start, time.monotonic()))

    def handler(self) -> type:
        proxy = self

        class Handler(_Quiet):
            protocol_version = "HTTP/1.1"

            def _forward(self) -> None:
                start = time.monotonic()
                plan = proxy._plan(self.path)
                try:
                    if plan == "fail":
                        body = b"injected failure"
                        self.send_response(500)
                        self.send_header("Content-Length", str(len(body)))
                        self.end_headers()
                        if self.command != "HEAD":
                            self.wfile.write(body)
                    elif plan == "drop":
                        self.close_connection = True
                        self.connection.shutdown(2)
                    elif plan == "stall":  # answers nothing: the client gives up
                        self.close_connection = True
                    else:
                        self._relay()
                except OSError:
                    self.close_connection = True
                finally:
                    proxy._done(start)
                if plan == "stall":  # hold the connection open, not counted
                    time.sleep(proxy.stall)

            def _relay(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {
                    k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP
                }
                conn = http.client.HTTPConnection(proxy.upstream, timeout=30)
                conn.request(self.command, self.path, body=body, headers=headers)
                answer = conn.getresponse()
                data = answer.read()
                self.send_response(answer.status)
                head = self.command == "HEAD"  # keep the upstream's length
                for k, v in answer.getheaders():
                    if k.lower() not in HOP_BY_HOP and (
                        head or k.lower() != "content-length"
                    ):
                        self.send_header(k, v)
                if not head:
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                conn.close()

            do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _forward

        return Handler

    @contextlib.contextmanager
    def running(self) -> Iterator[str]:
        """Serve; yields the proxy's base URL."""
        with _serve(self.handler()) as server:
            yield f"http://127.0.0.1:{server.server_address[1]}"


#: the routes of omero-web-zarr (ome/omero-web-zarr, omero_web_zarr/urls.py)
#: below OMERO.web's /zarr/ prefix; every other path is a 404 there
OMERO_WEB_ZARR = re.compile(
    r"^/zarr/v0\.[34]/image/[0-9]+\.zarr/"
    r"(\.zattrs|\.zgroup|[0-9]+/\.zarray|[0-9]+/[0-9/]+)$"
)


class _OmeroWebZarr(_Quiet):
    """Answers only the URLs OMERO.web's zarr endpoint answers (image
    attributes, group, each level's .zarray, chunks by "/"-separated index),
    404 for the rest: no listings, no .zmetadata, no zarr.json, no level
    .zattrs."""

    def send_head(self):
        if not OMERO_WEB_ZARR.match(self.path.split("?", 1)[0]):
            self.send_error(404, "not an omero-web-zarr URL")
            return None
        return super().send_head()


@contextlib.contextmanager
def omero_web_zarr_server(directory: str | Path) -> Iterator[str]:
    """``directory`` (holding ``zarr/v0.4/image/<id>.zarr/...``, see
    :func:`biocodes.synth.write_omero_zarr`) served with OMERO.web's zarr
    URL layout; yields the server's base URL (an OMERO.web's address)."""
    handler = functools.partial(_OmeroWebZarr, directory=str(directory))
    with _serve(handler) as server:
        yield f"http://127.0.0.1:{server.server_address[1]}"
