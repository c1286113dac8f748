"""The one exception hierarchy of supex, grouped by what the caller must do.

Every package adds its leaves in its own ``exceptions.py``; all of them root here,
because ``schemas`` is the package every other one imports. The whole tree::

    SupexError
    ├── ConfigurationError   fix the configuration, mapping or schema file, then run again
    │   ├── UnknownRecordTypeError       (schemas)
    │   ├── MappingDefinitionError       (mappings)
    │   ├── UnknownMappingError          (mappings)
    │   ├── PolicyDefinitionError        (policy: a sharing rule that does not fit)
    │   ├── CalendarUnknownError         (policy: a time limit over days the calendar does not know)
    │   ├── UnknownKindError             (connectors)
    │   ├── ConfigError                  (gateway: an unknown key, a missing secret, an address in use)
    │   └── StoreInUseError              (gateway: a SQLite store another gateway serves)
    ├── InputError           this input is malformed; other inputs go on
    │   ├── SourceFormatError            (mappings: JSON, XML, CSV, workbooks, encodings, DTDs, headers)
    │   ├── ValueMappingError            (mappings: one value of one record)
    │   │   └── ItemsMappingError        (mappings: items of a list rule)
    │   ├── ProcedureStepError           (policy: a step of the sharing procedure not allowed now)
    │   ├── GatewayRefusedError          (connectors: the gateway refused a request for good)
    │   └── SourceError                  (gateway: a polled page or a dropped file cannot be taken)
    ├── Refusal              a request answered with an HTTP error: its status and code say why
    │   ├── BodyError                    (gateway: the body as a whole: 400, 408, 413, 415, 429)
    │   ├── AuthError                    (gateway: credentials: 401, 403, 429)
    │   │   └── ReplayError              (gateway: a nonce used before: 401)
    │   ├── ParameterError               (gateway: a query parameter: 400)
    │   ├── NotFoundError                (gateway: an item not there, or not the caller's: 404)
    │   ├── ArchivedError                (gateway: a log entry archived and pruned from the store: 410)
    │   └── ReadLimitError               (gateway: an agreement's reads a day: 429)
    ├── RetriableError       a resource is unavailable now; the same call may succeed later
    │   ├── UnreachableError             (connectors: no answer to a request)
    │   │   └── GatewayUnreachableError  (connectors)
    │   ├── GatewayBusyError             (connectors: 429, 503 from the gateway)
    │   ├── StoreUnavailableError        (gateway: the store cannot commit now: 503)
    │   ├── SourceUnavailableError       (gateway: a polled system is down now)
    │   └── DeliveryFailedError          (gateway: a consumer did not take a push)
    └── FatalError           an invariant is broken; stop and investigate
        ├── LogIntegrityError            (gateway: the hash chain is broken)
        └── DataKeyError                 (gateway: a sealed payload cannot be opened)

A foreign error (the operating system's, a library's) is translated into one of these once, where
it is caught, and kept as the cause (``raise … from exc``).

Validation failures of a record are not exceptions: they are data (``schemas.Issue``).
"""

from __future__ import annotations

__all__ = [
    "ConfigurationError",
    "FatalError",
    "InputError",
    "Refusal",
    "RetriableError",
    "SupexError",
    "UnknownRecordTypeError",
]


class SupexError(Exception):
    """Root of every error supex raises on purpose."""


class ConfigurationError(SupexError):
    """A configuration, mapping or schema definition is wrong; nothing runs until it is fixed."""


class InputError(SupexError):
    """One input (file, body, record) cannot be read; the others are still processed."""


class Refusal(SupexError):  # noqa: N818 - an answer to a request, not a fault of supex
    """A request refused, answered with ``status`` and ``code`` (``retry_after`` seconds, if the
    caller may try again then); the message says what to do, in Chinese and English."""

    def __init__(self, status: int, code: str, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.retry_after = status, code, message, retry_after


class RetriableError(SupexError):
    """A resource is unavailable for now; retrying later may succeed."""


class FatalError(SupexError):
    """An invariant is broken (for example a corrupted store); processing must stop."""


class UnknownRecordTypeError(ConfigurationError):
    """A record type that the standard interface does not define was named."""

    def __init__(self, record_type: str) -> None:
        super().__init__(f"未知的记录类型 / unknown record type: {record_type!r}")
        self.record_type = record_type
