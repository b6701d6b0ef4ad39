"""Queue triggers: one listener per queue-triggered function, with the Storage Queues extension's semantics.

Owns what the host's queue listener does for a `queueTrigger` function, configured by
host.json `extensions.queues`:
https://learn.microsoft.com/azure/azure-functions/functions-bindings-storage-queue#host-json
https://learn.microsoft.com/azure/azure-functions/functions-bindings-storage-queue-trigger#usage
- polling: after a poll that found messages the next one follows at once; while the queue stays
  empty the wait grows exponentially (randomised by ±20 %) from 100 ms up to `maxPollingInterval`;
- `batchSize` messages fetched by one call and run concurrently; the next batch is fetched once
  the number in flight has fallen to `newBatchThreshold`;
- a message stays invisible while its function runs; success deletes it; a failure makes it
  visible again after `visibilityTimeout`; when `dequeueCount` (kept by storage) has reached
  `maxDequeueCount` the message is copied to `{queue}-poison` (created if missing) and deleted.
  A message already past `maxDequeueCount` when it is fetched (its host died mid-run) and one
  that is not valid base64 under `messageEncoding: base64` go to the poison queue without a run,
  as the extension does;
- the queue is created when missing; storage errors are logged and the poll retried with the
  back-off, never the end of the listener.

Local differences: the host fetches with a 10-minute visibility renewed while the function runs;
devhost leases for `DEVHOST_QUEUE_LEASE_SECONDS` (default 10) and renews every half lease, so the
messages of a killed devhost reappear within seconds, not minutes. `newBatchThreshold` defaults to
batchSize/2 (one instance; dynamic concurrency is not emulated).
It never changes a message's content, and never deletes a message whose function did not
succeed without first copying it to the poison queue.
"""

from __future__ import annotations

import base64
import binascii
import logging
import random
import re
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.functions.queue import QueueMessage as TriggerMessage
from azure.storage.queue import ExponentialRetry, QueueClient, QueueMessage, QueueServiceClient

from devhost.functions import FunctionSpec, HostConfig, Invoker, Outcome, StartupError
from devhost.hoststorage import connection_string
from devhost.queueconfig import MINIMUM_POLLING_SECONDS, QueueOptions, read_lease_seconds
from shared.sessions import storage_transport

log = logging.getLogger("devhost.queues")
# TriggerMessage is the class the worker builds for a queue trigger, with every property; the
# `azure.functions.QueueMessage` it subclasses takes only id, body and pop receipt.

POISON_SUFFIX = "-poison"
# https://learn.microsoft.com/rest/api/storageservices/naming-queues-and-metadata#queue-names
_QUEUE_NAME = re.compile(r"(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")


def decode_body(content: str | None, encoding: str) -> bytes:
    """The message's bytes: base64-decoded (whitespace ignored, as .NET does) or the text as UTF-8."""
    text = content or ""
    if encoding == "none":
        return text.encode("utf-8")
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError) as error:
        raise ValueError(f"not valid base64 ({error})") from None


class PollingDelay:
    """The wait before polling an empty queue again: the host's randomised exponential back-off."""

    def __init__(self, maximum: float, minimum: float = MINIMUM_POLLING_SECONDS,
                 rng: random.Random | None = None) -> None:
        self.minimum = minimum
        self.maximum = max(minimum, maximum)
        self._current = minimum
        self._exponent = 0
        self._random = rng or random.Random()

    def next(self, found_messages: bool) -> float:
        """`found_messages`: whether a poll found any since the last wait (then the wait is back at 100 ms)."""
        if found_messages:
            self._current, self._exponent = self.minimum, 1
        elif self._current < self.maximum:
            grown = self.minimum
            if self._exponent > 0:
                grown += self._random.uniform(0.8, 1.2) * 2 ** (self._exponent - 1) * self.minimum
            if grown < self.maximum:
                self._current = grown
                self._exponent += 1
            else:
                self._current = self.maximum
        return self._current


def _lost(error: AzureError) -> bool:
    """The message is no longer ours: deleted, or another consumer holds a newer pop receipt."""
    return isinstance(error, ResourceNotFoundError) or getattr(error, "error_code", None) == "PopReceiptMismatch"


class MessageLease:
    """Keeps one fetched message invisible while its function runs, renewing at half the lease."""

    def __init__(self, queue: QueueClient, message: QueueMessage, seconds: int) -> None:
        self.queue = queue
        self.message_id = str(message.id)
        self.pop_receipt = str(message.pop_receipt)  # each renewal returns a new one
        self.seconds = seconds
        self._ended = threading.Event()
        self._thread = threading.Thread(target=self._renew, name=f"lease-{self.message_id[:8]}", daemon=True)

    def __enter__(self) -> MessageLease:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._ended.set()
        self._thread.join()  # no renewal in flight afterwards: pop_receipt is final

    def _renew(self) -> None:
        interval = self.seconds / 2
        while not self._ended.wait(interval):
            try:
                receipt = self.queue.update_message(self.message_id, self.pop_receipt, visibility_timeout=self.seconds)
            except AzureError as error:
                if _lost(error):
                    log.warning("queue %s: lost the lease of message %s while its function ran", self.queue.queue_name,
                                self.message_id)
                    return
                log.warning("queue %s: could not renew the lease of message %s: %s", self.queue.queue_name,
                            self.message_id, error)
                interval = max(0.5, self.seconds / 6)  # try again well before the lease runs out
                continue
            self.pop_receipt = str(receipt.pop_receipt)
            interval = self.seconds / 2


class QueueListener:
    def __init__(self, spec: FunctionSpec, environ: Mapping[str, str], config: HostConfig, invoker: Invoker,
                 stop: threading.Event, *, lease_seconds: int | None = None) -> None:
        self.spec = spec
        self.queue_name = str(spec.trigger.get("queueName") or "")
        if not _QUEUE_NAME.fullmatch(self.queue_name):
            raise StartupError(f"function {spec.name}: {self.queue_name!r} is not a queue name (3-63 lower-case "
                               "letters, digits and single hyphens, starting and ending with a letter or digit)")
        self.options = QueueOptions.from_host_json(config.queues, config.path)
        self.lease_seconds = lease_seconds or read_lease_seconds(environ)
        # The SDK's default retries wait 15 s and more; a lease renewal or a delete must not stall that long.
        # The app's storage transport: as many pooled connections as the batch's runs renewing and deleting
        # (azure-core's default keeps 10 and throws the rest away).
        service = QueueServiceClient.from_connection_string(
            connection_string(environ, spec.trigger.get("connection")),
            transport=storage_transport(connection_timeout=5, read_timeout=60),  # 60 s: the SDK's own default
            retry_policy=ExponentialRetry(initial_backoff=1, increment_base=2, retry_total=2, random_jitter_range=1))
        self.queue = service.get_queue_client(self.queue_name)
        poison_name = self.queue_name + POISON_SUFFIX
        # As the host: a queue already named *-poison, or too long for the suffix, has no poison queue.
        self.poison = None if self.queue_name.endswith(POISON_SUFFIX) or len(poison_name) > 63 else (
            service.get_queue_client(poison_name))
        self.invoker = invoker
        self.stop = stop
        self.delay = PollingDelay(self.options.max_polling_seconds)
        self._in_flight = 0
        self._changed = threading.Condition()
        self.executor = ThreadPoolExecutor(max_workers=self.options.batch_size + self.options.new_batch_threshold,
                                           thread_name_prefix=f"queue-{spec.name}")

    @property
    def in_flight(self) -> int:
        with self._changed:
            return self._in_flight

    def run(self) -> None:
        options = self.options
        log.info("Listening on queue %s for function %s (batchSize %d, newBatchThreshold %d, maxPollingInterval "
                 "%gs, visibilityTimeout %gs, maxDequeueCount %d, lease %ds)", self.queue_name, self.spec.name,
                 options.batch_size, options.new_batch_threshold, options.max_polling_seconds,
                 options.visibility_timeout_seconds, options.max_dequeue_count, self.lease_seconds)
        queue_exists = False
        storage_failing = False
        found_since_wait = False
        while not self.stop.is_set():
            self._wait_for_room()
            if self.stop.is_set():
                break
            messages: list[QueueMessage] = []
            try:
                if not queue_exists:
                    self._create(self.queue, retry_total=0)
                    queue_exists = True
                # One Get Messages call per poll, as the host makes (iterating the pager would call
                # again until the queue is empty); no SDK retries, the back-off is the retry.
                pages = self.queue.receive_messages(messages_per_page=options.batch_size,
                                                    visibility_timeout=self.lease_seconds, retry_total=0).by_page()
                messages = list(next(pages, []))
            except ResourceNotFoundError:
                log.warning("queue %s is missing: creating it", self.queue_name)
                queue_exists = False  # deleted under us: created again on the next poll
            except Exception as error:  # noqa: BLE001 - storage down: log once, keep polling with the back-off
                if not storage_failing:
                    log.warning("queue %s: cannot poll (%s: %s); retrying", self.queue_name, type(error).__name__,
                                error)
                storage_failing = True
            else:
                if storage_failing:
                    log.info("queue %s: storage answers again", self.queue_name)
                storage_failing = False
            if messages:
                found_since_wait = True
                for message in messages:
                    self._start(message)
                continue
            self.stop.wait(self.delay.next(found_since_wait))
            found_since_wait = False

    def shutdown(self) -> None:
        """Stop taking messages; those fetched but not run reappear when their lease ends."""
        self.executor.shutdown(wait=False, cancel_futures=True)
        with self._changed:
            self._changed.notify_all()

    def invoke_text(self, text: str) -> Outcome:
        """The admin API's "run now": the function gets a message with this text, as the host's admin API
        makes it (no id, dequeue count 0, no queue involved)."""
        body = text.encode("utf-8")
        value: Any = TriggerMessage(id=None, body=body, dequeue_count=0)
        if self.spec.trigger_annotation == "bytes":
            value = body
        elif self.spec.trigger_annotation == "str":
            value = text
        return self.invoker.invoke(self.spec, value, reason="Manual invocation")

    # One message

    def _wait_for_room(self) -> None:
        with self._changed:
            while self._in_flight > self.options.new_batch_threshold and not self.stop.is_set():
                self._changed.wait(0.5)

    def _start(self, message: QueueMessage) -> None:
        with self._changed:
            self._in_flight += 1
        try:
            self.executor.submit(self._process, message)
        except RuntimeError:  # shutting down: the message reappears when its lease ends
            self._finished()

    def _finished(self) -> None:
        with self._changed:
            self._in_flight -= 1
            self._changed.notify_all()

    def _process(self, message: QueueMessage) -> None:
        try:
            self._handle(message)
        except Exception:  # noqa: BLE001 - the message reappears when its lease ends and is tried again
            log.exception("queue %s: message %s could not be completed", self.queue_name, message.id)
        finally:
            self._finished()

    def _handle(self, message: QueueMessage) -> None:
        dequeue_count = int(message.dequeue_count or 0)
        pop_receipt = str(message.pop_receipt)
        if dequeue_count > self.options.max_dequeue_count:
            self._poison(message, pop_receipt, f"has reached MaxDequeueCount of {self.options.max_dequeue_count}")
            return
        try:
            body = decode_body(message.content, self.options.message_encoding)
        except ValueError as error:
            self._poison(message, pop_receipt, f"is {error} (messageEncoding is base64)")
            return
        with MessageLease(self.queue, message, self.lease_seconds) as lease:
            succeeded = self._invoke(message, body)
        self._complete(message, lease.pop_receipt, succeeded)

    def _invoke(self, message: QueueMessage, body: bytes) -> bool:
        value: Any
        if self.spec.trigger_annotation == "bytes":
            value = body
        elif self.spec.trigger_annotation == "str":
            try:
                value = body.decode("utf-8")
            except UnicodeDecodeError as error:
                log.error("Function '%s': message %s is not UTF-8 text for its str parameter (%s)", self.spec.name,
                          message.id, error)
                return False
        else:
            value = TriggerMessage(id=message.id, body=body, dequeue_count=message.dequeue_count,
                                      expiration_time=message.expires_on, insertion_time=message.inserted_on,
                                      time_next_visible=message.next_visible_on, pop_receipt=message.pop_receipt)
        reason = (f"New queue message detected on '{self.queue_name}'. MessageId: {message.id}, "
                  f"DequeueCount: {message.dequeue_count}")
        return self.invoker.invoke(self.spec, value, reason).succeeded

    def _complete(self, message: QueueMessage, pop_receipt: str, succeeded: bool) -> None:
        if succeeded:
            self._delete(message, pop_receipt)
        elif self.poison is None:
            pass  # no poison queue: the host leaves it invisible, so it comes back only when its lease ends
        elif int(message.dequeue_count or 0) >= self.options.max_dequeue_count:
            self._poison(message, pop_receipt, f"has reached MaxDequeueCount of {self.options.max_dequeue_count}")
        else:
            try:
                self.queue.update_message(str(message.id), pop_receipt,
                                          visibility_timeout=int(self.options.visibility_timeout_seconds))
            except AzureError as error:
                if not _lost(error):
                    raise

    def _poison(self, message: QueueMessage, pop_receipt: str, why: str) -> None:
        if self.poison is None:
            return
        log.warning("Message Id '%s' %s. Moving message to queue '%s'.", message.id, why, self.poison.queue_name)
        try:
            self.poison.send_message(message.content or "")
        except ResourceNotFoundError:
            self._create(self.poison)
            self.poison.send_message(message.content or "")
        self._delete(message, pop_receipt)

    def _delete(self, message: QueueMessage, pop_receipt: str) -> None:
        try:
            self.queue.delete_message(str(message.id), pop_receipt)
        except AzureError as error:
            if not _lost(error):
                raise
            log.debug("queue %s: message %s was already gone or taken over", self.queue_name, message.id)

    @staticmethod
    def _create(queue: QueueClient, **options: Any) -> None:
        # Create Queue answers 204 for an existing queue with the same metadata, 409 otherwise.
        try:
            queue.create_queue(**options)
        except ResourceExistsError:
            pass
