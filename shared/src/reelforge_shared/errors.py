"""Errors typed by what happens to the message, not by where they come from.

    ReelforgeError
    ├── PermanentError        the message is dead-lettered at once and a failed event published
    │   └── InvalidInput      bad input; the message names the field and the value
    ├── TransientError        the message is nak'ed with a delay and JetStream redelivers it
    │   └── DependencyDown    S3 or NATS unreachable: the worker waits the outage out, the message is not spent
    ├── Cancelled             the job was cancelled: the message is acked, nothing is published
    └── StartupFailed         the worker cannot start (a stream missing, a dependency past the tolerance, a
                              refused model): one log line naming what to run or the setting to change, exit 2

Any other exception counts as transient until the consumer's last delivery, after which the
message is dead-lettered like a permanent error.
"""


class ReelforgeError(Exception):
    """Base of every error Reelforge raises on purpose."""


class PermanentError(ReelforgeError):
    """Retrying cannot help: dead-letter the message and record the failure."""


class InvalidInput(PermanentError):
    """Input that breaks the contract; the message names the field and the value."""


class TransientError(ReelforgeError):
    """Retrying may help (a server briefly away, a resource busy): nak with a delay."""


class Cancelled(ReelforgeError):
    """The job was cancelled while this work ran: stop, keep what is stored, publish nothing."""


class StartupFailed(ReelforgeError):
    """The worker cannot start; the message names what to run or which setting to change."""


class DependencyDown(TransientError):
    """A server the worker needs (``s3``, ``nats``) cannot be reached: a condition of the worker, not of the event."""

    def __init__(self, dependency: str, detail: str) -> None:
        super().__init__(f"{dependency} unreachable: {detail}")
        self.dependency, self.detail = dependency, detail
