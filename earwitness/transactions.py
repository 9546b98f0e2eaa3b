"""One Kafka transaction per checkpoint, shared by the analyzer and the alert runner.

::

    begin_transaction
    produce every record of the checkpoint (events, dead letters, changelog / state)
    send_offsets_to_transaction(offsets, consumer group metadata)   (next offsets to read)
    commit_transaction

Errors: ``retriable()`` → retry the commit; ``txn_requires_abort()`` → abort, raise
:class:`TransactionAborted` (the caller rewinds to its last committed offsets and state and
redoes the work); anything else (fenced, unauthorised) → :class:`KafkaFatalError`.

A record refused for itself (too large for ``message.max.bytes`` here or the topic's
``max.message.bytes`` on the broker, invalid: :data:`REFUSED`) is not the transaction's fault,
and replaying it would fail the same way forever. The client refuses it in ``produce``; the
broker in its delivery report, which puts the transaction in the abortable state. Either way the
transaction is redone at once with the same offsets (nothing was committed, the caller's state
has not moved): a record the broker refused is produced again alone (flushed on its own, since
the broker refuses a whole batch), and one refused alone is replaced by its
``Record.instead`` (the caller's policy: a small dead letter). A record without ``instead``,
or whose replacement is refused too, is fatal.

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
from typing import cast

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from earwitness import failpoints
from earwitness.errors import KafkaFatalError, TransientError

logger = logging.getLogger(__name__)

COMMIT_RETRIES = 5
Headers = Sequence[tuple[str, str | bytes | None]]

REFUSED = frozenset(
    {
        KafkaError.MSG_SIZE_TOO_LARGE,
        KafkaError.RECORD_LIST_TOO_LARGE,
        KafkaError.INVALID_MSG_SIZE,
        KafkaError.INVALID_MSG,
        KafkaError.INVALID_RECORD,
    }
)
"""Error codes that refuse one record for itself, not the transaction (module docstring)."""


MAX_REDOS = 3
"""Attempts in a row a checkpoint redoes after refused records, none refused in them."""
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
    instead: Callable[[str], Record] | None = None
    """What to produce in this record's place if it is refused for itself (:data:`REFUSED`),
    given the client's error text; None: such a refusal is fatal."""


class _Plan:
    """The records of one checkpoint as the next attempt produces them."""

    def __init__(self, records: Iterable[Record]) -> None:
        self.records = list(records)
        self.alone: set[int] = set()
        """Records the broker refused in a batch: produced next time in a batch of their own."""
        self.replaced = 0
        self.redos = 0
        """Attempts aborted since the last refusal (only after one: see ``redoable``)."""

    def redoable(self, refused: bool, error: KafkaError) -> bool:
        """Whether an aborted attempt is redone here rather than rewound by the caller: one
        with refusals, or one of the next few after a refusal. After a batch was refused the
        next transaction fails once on its skipped sequence numbers (OUT_OF_ORDER_SEQUENCE_NUMBER;
        its abort bumps the producer epoch), or its ``produce`` on the erroneous state."""
        if not (error.txn_requires_abort() or error.code() == KafkaError._STATE):
            return False
        if refused:
            return True
        self.redos += 1
        return bool(self.alone or self.replaced) and self.redos <= MAX_REDOS

    def refused(self, index: int, error: KafkaError, *, alone: bool) -> Record:
        """Record ``index`` was refused (``alone``: in a batch of its own, or by the client):
        produce it alone, or else its replacement."""
        record = self.records[index]
        if not alone:
            self.alone.add(index)
            return record
        if record.instead is None:
            raise KafkaFatalError(f"{record.topic} refused a record: {error.str()}")
        replacement = record.instead(error.str())
        logger.error(
            "%s refused a record (%s): producing its replacement to %s",
            record.topic,
            error.str(),
            replacement.topic,
        )
        self.alone.discard(index)
        self.replaced += 1
        self.records[index] = replacement
        return replacement


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
        plan = _Plan(records)
        while self._attempt(plan, offsets, consumer):
            logger.warning("redoing the transaction without the refused records")

    def _attempt(
        self, plan: _Plan, offsets: Mapping[tuple[str, int], int], consumer: Consumer
    ) -> bool:
        """One transaction of ``plan``; True: the broker refused records, it was aborted and
        ``plan`` now says how to produce them."""
        refused: dict[int, KafkaError] = {}
        try:
            self._producer.begin_transaction()
            self._produce_all(plan, refused)
            self._producer.flush(self.timeout_s)  # serves the delivery reports
            if refused:
                self._abort_refused(plan, refused)
                return True
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
            if plan.redoable(bool(refused), exc.args[0]):
                self._abort_refused(plan, refused)
                return True
            self._fail(exc)
        except TransactionStuck as exc:
            self._replace(exc)
        return False

    def _produce_all(self, plan: _Plan, refused: dict[int, KafkaError]) -> None:
        """Produce the plan; a record the client refuses is replaced at once, one the broker
        refuses lands in ``refused`` (by index) from its delivery report."""
        for index in range(len(plan.records)):
            record, alone = plan.records[index], index in plan.alone
            if alone:
                self._producer.flush(self.timeout_s)

            def report(error: KafkaError | None, _msg: object, index: int = index) -> None:
                if error is not None and error.code() in REFUSED:
                    refused[index] = error

            while (error := self._produce(record, report)) is not None:
                record = plan.refused(index, error, alone=True)
            if alone:
                self._producer.flush(self.timeout_s)

    def _abort_refused(self, plan: _Plan, refused: dict[int, KafkaError]) -> None:
        """Abort a transaction the broker's refusals spoiled; note how to produce them next."""
        if refused:
            plan.redos = 0
        for index, error in sorted(refused.items()):
            plan.refused(index, error, alone=index in plan.alone)
        try:
            self._bounded("abort_transaction", self._producer.abort_transaction)
        except TransactionStuck as stuck:
            self._replace(stuck)
        except KafkaException as abort_failed:
            raise KafkaFatalError(f"abort_transaction: {abort_failed}") from abort_failed

    def close(self) -> None:
        self._producer.flush(self.timeout_s)

    def _produce(
        self, record: Record, report: Callable[[KafkaError | None, object], None]
    ) -> KafkaError | None:
        """Produce one record; the client's error if it refuses the record for itself."""
        partition = -1 if record.partition is None else record.partition  # -1: by key
        while True:
            try:
                self._producer.produce(
                    record.topic,
                    value=record.value,
                    key=record.key,
                    partition=partition,
                    headers=list(record.headers or ()),
                    on_delivery=report,
                )
                return None
            except BufferError:
                self._producer.poll(0.05)  # local queue full: let deliveries drain
            except KafkaException as exc:
                if exc.args[0].code() not in REFUSED:
                    raise
                return cast("KafkaError", exc.args[0])

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
