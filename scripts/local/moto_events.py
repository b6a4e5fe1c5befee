"""EventBridge in the local moto, made to deliver as EventBridge does (issue 15).

moto matches an event against the rules of its bus (its own pattern matcher: exact values,
prefix, anything-but, exists, $or) and delivers to SQS, log groups and archives itself. Three
things differ from AWS, and this module changes them in the moto server's process:

1. **Event bus targets** (cross-account or cross-region forwarding): moto re-puts the event
   as a new one in the target account, losing `id`, `time`, `resources`, and the original
   `account` and `region`. EventBridge forwards the event as it is. Here the event itself is
   offered to the target bus's rules.
2. **Lambda targets**: moto drops them (it needs Docker to run code). Here each delivery is
   recorded in a journal (`DELIVERIES`) that the local runner drains over
   `GET /_local/event-deliveries?after=SEQ` and carries out (`scripts.local.event_delivery`).
3. **SQS event source mappings**: moto invokes the function inside SendMessage (Docker again).
   Here moto keeps no mapping on the queue; the local runner polls the queue as Lambda does.

And one cost, not a difference in answers: moto 5.2 builds a queue's whole `attributes` to
read any one of them, and building them counts the queue's messages (visible, delayed, in
flight: three passes over every message, each a few datetime conversions). SendMessage reads
them for one FIFO setting; ReceiveMessage, for each message it returns, reads
MessageRetentionPeriod through GetQueueAttributes (which builds them three times). A rule
delivering a burst of events to a queue that is behind, and the poller reading it, thus paid
for the whole backlog per message, under the local server's one lock (measured under
`make bench-events`: PutEvents 0.6 ms per event into an empty queue, 40 ms with a few
thousand waiting; ReceiveMessage of 10 from 3,000 waiting, 3 s). Here the counts are made only
when a caller asks for them (GetQueueAttributes naming them, or All); every answer is moto's.
"""

from __future__ import annotations

import contextlib
import copy
import threading
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

LAMBDA_TARGET = ":lambda:"
_installed = False


class DeliveryJournal:
    """Lambda deliveries moto cannot make, numbered from 1, kept until the runner reads them
    (bounded: the oldest go first past `limit`)."""

    def __init__(self, limit: int = 100_000) -> None:
        self._limit = limit
        self._items: list[dict[str, Any]] = []
        self._next = 1
        self._changed = threading.Condition()

    def add(self, delivery: dict[str, Any]) -> None:
        with self._changed:
            self._items.append({"seq": self._next, **delivery})
            self._next += 1
            del self._items[: max(0, len(self._items) - self._limit)]
            self._changed.notify_all()

    def after(self, seq: int, wait_seconds: float = 0.0) -> list[dict[str, Any]]:
        """Deliveries numbered above `seq`, waiting up to `wait_seconds` for one."""
        with self._changed:
            self._changed.wait_for(lambda: self._next - 1 > seq, timeout=wait_seconds)
            return [item for item in self._items if item["seq"] > seq]

    def clear(self) -> None:
        with self._changed:
            self._items.clear()


DELIVERIES = DeliveryJournal()


def _iso(value: Any) -> str:
    """moto keeps an event's time as epoch seconds; EventBridge sends ISO-8601 UTC."""
    if isinstance(value, int | float):
        return datetime.fromtimestamp(float(value), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value)


def aws_event(event: Mapping[str, Any]) -> dict[str, Any]:
    """The event as EventBridge hands it to a target (no moto-only `ingestion-time`)."""
    shaped = {key: value for key, value in event.items() if key != "ingestion-time"}
    shaped["time"] = _iso(shaped.get("time"))
    return shaped


# moto's Rule.send_to_targets, Rule.event_pattern/targets/state, EventBus.rules,
# Queue.lambda_event_source_mappings, the Queue.approximate_number_of_messages* properties,
# SQSBackend.send_message and SQSBackend.get_queue_attributes are replaced or read here:
# internals of the moto this was tested with (requirements.txt pins it). Another minor version
# refuses to install (the local AWS then fails to start, loudly) until this module is checked
# against it.
TESTED_MOTO = "5.2"


def unsupported_moto() -> str | None:
    """Why this moto cannot be patched (a version other than TESTED_MOTO.x), or None."""
    import moto

    if ".".join(moto.__version__.split(".")[:2]) != TESTED_MOTO:
        return f"moto {moto.__version__} (moto_events was tested with {TESTED_MOTO}.x)"
    return None


def install() -> None:
    """Patch moto's rule delivery and SQS event source mappings (see the module docstring).

    Raises RuntimeError on a moto other than TESTED_MOTO.x (fail closed)."""
    global _installed
    if _installed:
        return
    problem = unsupported_moto()
    if problem is not None:
        raise RuntimeError(f"cannot make the local EventBridge deliver as AWS does: {problem}")
    from moto.events import models as events_models
    from moto.sqs import models as sqs_models
    from moto.utilities.arns import parse_arn

    original_send = events_models.Rule.send_to_targets

    def send_to_targets(
        self: Any, original_event: dict[str, Any], transform_input: bool = True
    ) -> None:
        # EventBridge offers events only to ENABLED rules with a pattern (a schedule rule has
        # none; moto's matcher takes an empty pattern as "match everything").
        pattern = self.event_pattern
        if self.state != "ENABLED" or not pattern.get_pattern():
            return
        if not pattern.matches_event(original_event):
            return
        for target in list(self.targets):
            arn = target["Arn"]
            parsed = parse_arn(arn)
            if parsed.service == "events" and parsed.resource_type == "event-bus":
                _forward(events_models, parsed, original_event)
            elif LAMBDA_TARGET in arn:
                DELIVERIES.add(
                    {
                        "ruleArn": self.arn,
                        "target": copy.deepcopy(target),
                        "event": aws_event(original_event),
                    }
                )
            else:
                one_target = copy.copy(self)
                one_target.targets = [target]
                # moto's default input template drops `account`: without a transformer the
                # target gets the event itself, as from EventBridge.
                transform = transform_input and "InputTransformer" in target
                event = copy.deepcopy(original_event)
                if parsed.service in ("sqs", "logs"):
                    # Without moto's `ingestion-time` (an archive keeps it: replay reads it);
                    # moto writes `time` as ISO-8601 itself for these two.
                    event.pop("ingestion-time", None)
                original_send(one_target, event, transform)

    events_models.Rule.send_to_targets = send_to_targets

    # A property that forgets what is stored: moto's CreateEventSourceMapping still answers
    # (and lists the mapping), but SendMessage finds no mapping to invoke.
    sqs_models.Queue.lambda_event_source_mappings = property(
        lambda self: {}, lambda self, value: None
    )
    _count_only_when_asked(sqs_models)
    _installed = True


# The Queue properties that count its messages (read by `Queue.attributes`), by the names
# GetQueueAttributes knows them by.
QUEUE_COUNTS = {
    "approximate_number_of_messages": "ApproximateNumberOfMessages",
    "approximate_number_of_messages_delayed": "ApproximateNumberOfMessagesDelayed",
    "approximate_number_of_messages_not_visible": "ApproximateNumberOfMessagesNotVisible",
}
_uncounted = threading.local()  # .queue: the queue whose counts this thread's call won't read


@contextlib.contextmanager
def _counts_unread(queue: Any) -> Iterator[None]:
    previous = getattr(_uncounted, "queue", None)
    _uncounted.queue = queue
    try:
        yield
    finally:
        _uncounted.queue = previous


def _count_only_when_asked(sqs_models: Any) -> None:
    """Make moto's SendMessage (and SendMessageBatch, which calls it), and GetQueueAttributes
    naming no count (ReceiveMessage's retention check), skip the message counts they throw
    away (see the module docstring)."""
    for name in QUEUE_COUNTS:
        count = getattr(sqs_models.Queue, name).fget

        def counted_unless_unread(self: Any, count: Any = count) -> int:
            if getattr(_uncounted, "queue", None) is self:
                return 0  # built into `attributes` for a caller that reads no count
            return int(count(self))

        setattr(sqs_models.Queue, name, property(counted_unless_unread))

    original_send_message = sqs_models.SQSBackend.send_message
    original_get_queue_attributes = sqs_models.SQSBackend.get_queue_attributes

    def send_message(
        self: Any, queue_name: str, message_body: str, *args: Any, **kwargs: Any
    ) -> Any:
        with _counts_unread(self.get_queue(queue_name)):
            return original_send_message(self, queue_name, message_body, *args, **kwargs)

    def get_queue_attributes(self: Any, queue_name: str, attribute_names: list[str]) -> Any:
        wanted = set(attribute_names or ())
        if "All" in wanted or wanted & set(QUEUE_COUNTS.values()):
            return original_get_queue_attributes(self, queue_name, attribute_names)
        with _counts_unread(self.get_queue(queue_name)):
            return original_get_queue_attributes(self, queue_name, attribute_names)

    sqs_models.SQSBackend.send_message = send_message
    sqs_models.SQSBackend.get_queue_attributes = get_queue_attributes


def _forward(events_models: Any, bus_arn: Any, event: Mapping[str, Any]) -> None:
    """Offer `event`, unchanged, to the rules of the bus `bus_arn` (in its account/region)."""
    backend = events_models.events_backends[bus_arn.account][bus_arn.region]
    try:
        bus = backend.describe_event_bus(bus_arn.resource_id)
    except Exception:  # no such bus: EventBridge counts a failed invocation, nothing else
        return
    for rule in list(bus.rules.values()):
        if rule.state == "ENABLED":
            rule.send_to_targets(copy.deepcopy(dict(event)))
