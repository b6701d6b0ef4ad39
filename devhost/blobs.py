"""Blob triggers: poll the container, invoke once per blob version, retry, then poison.

Owns what the real host's blob-trigger listener does for devhost: new or changed
blobs under the trigger's `path` fire the function with an `InputStream`; a receipt
per ETag (in the host storage) means each version fires once, across restarts; a
failing invocation is tried 5 times in all, then a poison message and a receipt are
written. One invocation at a time per blob.
https://learn.microsoft.com/azure/azure-functions/functions-bindings-storage-blob-trigger#poison-blobs
It never deletes or changes a watched blob.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import azure.functions as func
from azure.core import MatchConditions
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import BlobClient, BlobProperties, BlobServiceClient

from devhost.functions import FunctionSpec, Invoker, Outcome, StartupError
from devhost.hoststorage import HostStorage, connection_string

log = logging.getLogger("devhost.blobs")

MAX_TRIES = 5  # the host's default maxDequeueCount for blob triggers
CHUNK_BYTES = 4 * 1024 * 1024


class LazyBlobStream(func.blob.InputStream):
    """An InputStream that downloads the blob version it was created for on first read, in chunks,
    so a big blob never sits whole in devhost's memory."""

    def __init__(self, client: BlobClient, properties: BlobProperties, connection: str = "") -> None:
        # The parent's constructor wants the whole content; this class reads on demand instead.
        self._client = client
        self._connection = connection
        self._etag = properties.etag
        self._downloader: Any = None
        self._name = f"{properties.container}/{properties.name}"
        self._length = properties.size
        self._uri = client.url
        self._metadata = dict(properties.metadata or {})
        self._blob_properties = {
            "ContentLength": properties.size,
            "ContentType": properties.content_settings.content_type if properties.content_settings else None,
            "ETag": properties.etag,
            "LastModified": properties.last_modified.isoformat() if properties.last_modified else None,
            "BlobType": "BlockBlob",
        }

    def read(self, size: int | None = -1) -> bytes:
        if self._downloader is None:
            # Pinned to the ETag that fired: a blob replaced mid-read fails this invocation,
            # and its new version fires on its own.
            self._downloader = self._client.download_blob(
                etag=self._etag, match_condition=MatchConditions.IfNotModified,
                max_concurrency=1,
            )
        return self._downloader.read(-1 if size is None or size < 0 else size)

    read1 = read

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        """A stream crosses to a language worker process as the blob's address and is opened again
        there (`devhost.workers`), pinned to the same ETag."""
        if not self._connection or self._downloader is not None:
            raise TypeError("only an unread blob stream with its connection can be opened again in a worker")
        return _reopened, (self._connection, self._name, self._etag, self._length, self._metadata,
                           self._blob_properties)


def _reopened(connection: str, name: str, etag: str, length: int, metadata: dict[str, str],
              blob_properties: dict[str, Any]) -> LazyBlobStream:
    container, _, blob = name.partition("/")
    client = _blob_service(connection).get_blob_client(container, blob)
    stream = LazyBlobStream.__new__(LazyBlobStream)
    stream.__dict__.update(_client=client, _connection=connection, _etag=etag, _downloader=None, _name=name,
                           _length=length, _uri=client.url, _metadata=metadata, _blob_properties=blob_properties)
    return stream


def _blob_service(connection: str) -> BlobServiceClient:
    """The trigger's blob client: downloads in CHUNK_BYTES pieces, so a big blob is never whole in memory."""
    return BlobServiceClient.from_connection_string(connection, max_single_get_size=CHUNK_BYTES,
                                                    max_chunk_get_size=CHUNK_BYTES)


def compile_blob_path(pattern: str) -> re.Pattern[str]:
    """`{name}` style parameters of a blob path; a parameter may span '/' as in the real host."""
    regex = ""
    position = 0
    for index, found in enumerate(re.finditer(r"\{([^{}]+)\}", pattern)):
        regex += re.escape(pattern[position : found.start()]) + f"(?P<p{index}>.+)"
        position = found.end()
    return re.compile(regex + re.escape(pattern[position:]))


class BlobWatcher:
    def __init__(self, spec: FunctionSpec, environ: Mapping[str, str], host_storage: HostStorage,
                 invoker: Invoker, executor: ThreadPoolExecutor, stop: threading.Event,
                 poll_seconds: float = 0.5) -> None:
        self.spec = spec
        path = str(spec.trigger.get("path") or "")
        self.container, _, blob_pattern = path.partition("/")
        if not self.container or not blob_pattern:
            raise StartupError(f"function {spec.name}: blob path {path!r} needs container/blob-pattern")
        self.prefix = blob_pattern.split("{", 1)[0]
        self.pattern = compile_blob_path(blob_pattern)
        self.connection = connection_string(environ, spec.trigger.get("connection"))
        self.container_client = _blob_service(self.connection).get_container_client(self.container)
        self.host_storage = host_storage
        self.invoker = invoker
        self.executor = executor
        self.stop = stop
        self.poll_seconds = poll_seconds
        self._lock = threading.Lock()
        self._done: set[tuple[str, str]] = set()
        self._in_flight: set[str] = set()
        self._tries: dict[tuple[str, str], int] = {}
        self._parameter_type = spec.trigger_annotation

    def run(self) -> None:
        log.info("Watching %s/%s for function %s", self.container, self.prefix + "…", self.spec.name)
        while not self.stop.is_set():
            try:
                self.poll_once()
            except ResourceNotFoundError:
                pass  # the container does not exist yet
            except Exception:  # noqa: BLE001 - storage hiccups must not end the watcher
                log.exception("blob watcher for %s: poll failed", self.spec.name)
            self.stop.wait(self.poll_seconds)

    def poll_once(self) -> None:
        for properties in self.container_client.list_blobs(name_starts_with=self.prefix or None,
                                                           include=["metadata"]):
            # Listings give the ETag bare, blob GETs quoted; the host writes it quoted everywhere.
            properties.etag = quoted_etag(properties.etag)
            key = (properties.name, properties.etag)
            with self._lock:
                if key in self._done or properties.name in self._in_flight:
                    continue
            if not self.pattern.fullmatch(properties.name):
                continue
            if self.host_storage.has_receipt(self.spec.function_id, properties.etag, self.container,
                                             properties.name):
                with self._lock:
                    self._done.add(key)
                continue
            with self._lock:
                self._in_flight.add(properties.name)
            properties.container = self.container
            self.executor.submit(self._process, properties)

    def _process(self, properties: BlobProperties) -> None:
        key = (properties.name, properties.etag)
        try:
            outcome = self.invoke(properties, reason=f"New blob detected: {self.container}/{properties.name}")
            if outcome.succeeded:
                self._receipt(properties)
                return
            with self._lock:
                tries = self._tries[key] = self._tries.get(key, 0) + 1
            if tries >= MAX_TRIES:
                log.error("Blob %s/%s (ETag %s) failed %d times: moved to the poison queue", self.container,
                          properties.name, properties.etag, tries)
                self.host_storage.write_poison(self.spec.function_id, self.container, properties.name,
                                               properties.etag)
                self._receipt(properties)
        except Exception:  # noqa: BLE001 - retried on the next poll
            log.exception("blob trigger %s: could not process %s", self.spec.name, properties.name)
        finally:
            with self._lock:
                self._in_flight.discard(properties.name)

    def _receipt(self, properties: BlobProperties) -> None:
        self.host_storage.write_receipt(self.spec.function_id, properties.etag, self.container, properties.name)
        with self._lock:
            self._done.add((properties.name, properties.etag))
            self._tries.pop((properties.name, properties.etag), None)

    def invoke(self, properties: BlobProperties, reason: str) -> Outcome:
        properties.container = self.container
        stream = LazyBlobStream(self.container_client.get_blob_client(properties.name), properties, self.connection)
        value: Any = stream
        if self._parameter_type in ("bytes", "str"):
            content = stream.read()
            value = content.decode("utf-8") if self._parameter_type == "str" else content
        return self.invoker.invoke(self.spec, value, reason)

    def invoke_path(self, blob_path: str) -> Outcome:
        """The admin API's "run now" with `container/blob` as input; no receipt is written."""
        container, _, name = blob_path.strip("/").partition("/")
        if container != self.container or not name:
            raise ValueError(f"input must be a blob path in {self.container}/")
        properties = self.container_client.get_blob_client(name).get_blob_properties()
        properties.etag = quoted_etag(properties.etag)
        return self.invoke(properties, reason="Manual invocation")


def quoted_etag(etag: str) -> str:
    return etag if etag.startswith('"') else f'"{etag}"'
