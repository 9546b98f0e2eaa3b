"""One Kafka transaction per checkpoint, shared by the analyzer and the alert runner.

::

    begin_transaction
    produce every record of the checkpoint (events, dead letters, changelog / state)
    send_offsets_to_transaction(offsets, consumer group metadata)   (next offsets to read)
    commit_transaction

Errors: ``retriable()`` → retry the commit; ``txn_requires_abort()`` → abort, raise
:class:`TransactionAborted` (the caller rewinds to its last committed offsets and state and
redoes the work); anything else (fenced, unauthorised) → :class:`KafkaFatalError`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from earwitness import failpoints
from earwitness.errors import KafkaFatalError, TransientError

logger = logging.getLogger(__name__)

COMMIT_RETRIES = 5
Headers = list[tuple[str, str | bytes | None]]


class TransactionAborted(TransientError):
    """The transaction was aborted; redo from the last committed offsets."""


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
        self._producer = Producer({**client_config, "transactional.id": transactional_id})

    def init(self) -> None:
        """Fence older instances with this transactional id; aborts what they left open."""
        _fatal_on_error(self._producer.init_transactions, self.timeout_s)

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
                self._producer.send_offsets_to_transaction(
                    tps, consumer.consumer_group_metadata(), self.timeout_s
                )
            failpoints.hit("checkpoint.before_commit")
            self._commit()
            failpoints.hit("checkpoint.after_commit")
        except KafkaException as exc:
            self._fail(exc)

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
                self._producer.commit_transaction(self.timeout_s)
                return
            except KafkaException as exc:
                if not exc.args[0].retriable() or attempt == COMMIT_RETRIES:
                    raise
                logger.warning("commit_transaction: retrying after %s", exc.args[0].str())

    def _fail(self, exc: KafkaException) -> None:
        error: KafkaError = exc.args[0]
        if error.txn_requires_abort():
            logger.warning("transaction aborted: %s", error.str())
            _fatal_on_error(self._producer.abort_transaction, self.timeout_s)
            raise TransactionAborted(error.str()) from exc
        raise KafkaFatalError(f"transaction failed: {error.str()}") from exc


def _fatal_on_error(method: Callable[[float], None], timeout_s: float) -> None:
    try:
        method(timeout_s)
    except KafkaException as exc:
        raise KafkaFatalError(f"transactional producer: {exc.args[0].str()}") from exc
