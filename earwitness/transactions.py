"""One Kafka transaction per checkpoint, shared by the analyzer and the alert runner.

::

    begin_transaction
    produce every record of the checkpoint (events, dead letters, changelog / state)
    send_offsets_to_transaction(offsets, consumer group metadata)   (next offsets to read)
    commit_transaction

Errors: ``retriable()`` → retry the commit; ``txn_requires_abort()`` → abort, raise
:class:`TransactionAborted` (the caller rewinds to its last committed offsets and state and
redoes the work); anything else (fenced, unauthorised) → :class:`KafkaFatalError`.

A transactional call that never returns is handled like an abort. librdkafka 2.16 can block
``send_offsets_to_transaction`` forever once the group coordinator went away, for example
across a broker restart (librdkafka #5456, #5511), whatever timeout it was given. So the
blocking calls run on a helper thread (``ew-kafka-txn-<call>``, one at a time, owned by
:class:`TransactionalProducer`) bounded by ``timeout_s`` plus a margin. Past that the producer
is abandoned (its stuck thread too) and a new one with the same transactional id is made: its
``init_transactions`` fences the old epoch and aborts the open transaction, then
:class:`TransactionAborted` is raised so the caller rewinds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from earwitness import failpoints
from earwitness.errors import KafkaFatalError, TransientError

logger = logging.getLogger(__name__)

COMMIT_RETRIES = 5
Headers = Sequence[tuple[str, str | bytes | None]]


STUCK_MARGIN_S = 10.0
"""How much longer than its own timeout a transactional call may take before it is stuck."""
REINIT_DEADLINE_S = 300.0
"""How long a replacement producer keeps retrying init_transactions (the broker coming back)."""


class TransactionAborted(TransientError):
    """The transaction was aborted; redo from the last committed offsets."""


class TransactionStuck(TransientError):
    """A transactional call did not return in time (see the module docstring)."""


@dataclass(frozen=True, slots=True)
class Record:
    """One record of a checkpoint; ``partition`` None lets the partitioner pick by key."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: Headers | None = None
    partition: int | None = None


class TransactionalProducer:
    """Owns a transactional producer; used only from the poll-loop thread that owns it."""

    def __init__(
        self, client_config: Mapping[str, object], transactional_id: str, timeout_s: float
    ) -> None:
        self.timeout_s = timeout_s
        self.transactional_id = transactional_id
        self._config = {**client_config, "transactional.id": transactional_id}
        self._producer = Producer(self._config)
        self._abandoned: list[Producer] = []
        """Producers stuck inside a call: kept referenced, since destroying one would block."""

    def init(self, deadline_s: float = 0.0) -> None:
        """Fence older instances with this transactional id; aborts what they left open.

        Retriable failures are retried for ``deadline_s`` seconds; anything else is fatal.
        """
        give_up = time.monotonic() + deadline_s
        while True:
            try:
                self._bounded("init_transactions", self._producer.init_transactions)
                return
            except (KafkaException, TransactionStuck) as exc:
                retriable = isinstance(exc, TransactionStuck) or exc.args[0].retriable()
                if not retriable or time.monotonic() > give_up:
                    raise KafkaFatalError(f"transactional producer: {exc}") from exc
                logger.warning("init_transactions: retrying after %s", exc)

    def commit(
        self,
        records: Iterable[Record],
        offsets: Mapping[tuple[str, int], int],
        consumer: Consumer,
    ) -> None:
        """Produce ``records`` and commit ``offsets`` ((topic, partition) → next offset) at once."""
        try:
            self._producer.begin_transaction()
            for record in records:
                self._produce(record)
            if offsets:
                tps = [TopicPartition(t, p, o) for (t, p), o in sorted(offsets.items())]
                metadata = consumer.consumer_group_metadata()
                self._bounded(
                    "send_offsets_to_transaction",
                    lambda timeout_s: self._producer.send_offsets_to_transaction(
                        tps, metadata, timeout_s
                    ),
                )
            failpoints.hit("checkpoint.before_commit")
            self._commit()
            failpoints.hit("checkpoint.after_commit")
        except KafkaException as exc:
            self._fail(exc)
        except TransactionStuck as exc:
            self._replace(exc)

    def close(self) -> None:
        self._producer.flush(self.timeout_s)

    def _produce(self, record: Record) -> None:
        partition = -1 if record.partition is None else record.partition  # -1: by key
        while True:
            try:
                self._producer.produce(
                    record.topic,
                    value=record.value,
                    key=record.key,
                    partition=partition,
                    headers=list(record.headers or ()),
                )
                return
            except BufferError:
                self._producer.poll(0.05)  # local queue full: let deliveries drain

    def _commit(self) -> None:
        for attempt in range(1, COMMIT_RETRIES + 1):
            try:
                self._bounded("commit_transaction", self._producer.commit_transaction)
                return
            except KafkaException as exc:
                if not exc.args[0].retriable() or attempt == COMMIT_RETRIES:
                    raise
                logger.warning("commit_transaction: retrying after %s", exc.args[0].str())

    def _bounded(self, name: str, call: Callable[[float], object]) -> None:
        """``call(timeout_s)`` on thread ``ew-kafka-txn-<name>``; TransactionStuck if it hangs."""
        failure: list[BaseException] = []

        def run() -> None:
            try:
                call(self.timeout_s)
            except BaseException as exc:  # handed to the caller's thread below
                failure.append(exc)

        thread = threading.Thread(target=run, name=f"ew-kafka-txn-{name}", daemon=True)
        thread.start()
        thread.join(self.timeout_s + STUCK_MARGIN_S)
        if thread.is_alive():
            raise TransactionStuck(
                f"{name} has not returned after {self.timeout_s + STUCK_MARGIN_S:.0f} s"
            )
        if failure:
            raise failure[0]

    def _replace(self, stuck: TransactionStuck) -> None:
        """Abandon the stuck producer, fence it with a new one, and report an abort."""
        logger.error("%s: replacing the transactional producer (librdkafka #5456, #5511)", stuck)
        self._abandoned.append(self._producer)
        self._producer = Producer(self._config)
        self.init(deadline_s=REINIT_DEADLINE_S)
        raise TransactionAborted(str(stuck)) from stuck

    def _fail(self, exc: KafkaException) -> None:
        error: KafkaError = exc.args[0]
        if not error.txn_requires_abort():
            raise KafkaFatalError(f"transaction failed: {error.str()}") from exc
        logger.warning("transaction aborted: %s", error.str())
        try:
            self._bounded("abort_transaction", self._producer.abort_transaction)
        except TransactionStuck as stuck:
            self._replace(stuck)
        except KafkaException as abort_failed:
            raise KafkaFatalError(f"abort_transaction: {abort_failed}") from abort_failed
        raise TransactionAborted(error.str()) from exc
