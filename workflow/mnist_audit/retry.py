"""One retry policy for network work: the MNIST download and the MLflow tracking store.

Retry what can succeed on a second try, fail at once on what cannot:

* retried: timeouts, refused or reset connections, a transfer cut short (fewer bytes
  than the server announced), HTTP 5xx, 408 and 429, a temporary DNS failure, a
  locked sqlite store, an MLflow error the server reports as 5xx;
* not retried: HTTP 4xx (a 404 stays a 404), a missing local file or folder, a
  permission error, a checksum mismatch, an MLflow error the server reports as 4xx,
  and anything this module does not recognise (a bug is not fixed by waiting).

An exception is judged by the first link of its cause chain that says something
(MLflow wraps a refused connection in an ``MlflowException``, urllib a missing file in
a ``URLError``). The wait doubles after each failed try: ``backoff_s``, 2 x, 4 x, ...
"""

from __future__ import annotations

import dataclasses
import http.client
import logging
import socket
import time
import urllib.error
from collections.abc import Callable, Iterator
from typing import TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

_RETRYABLE_HTTP = {408, 429}  # request timeout, too many requests; and every 5xx


class TransientError(Exception):
    """Raised by our own code for a failure that may pass (e.g. a cut transfer)."""


class PermanentError(Exception):
    """Raised by our own code for a failure that is the same on every try (a checksum
    mismatch, a wrong file): never retried."""


class RetryError(Exception):
    """``call`` gave up: ``last`` is the final failure, ``attempts`` how many were made,
    ``retryable`` whether it was of a kind worth retrying (False: it failed at once)."""

    def __init__(self, what: str, last: BaseException, attempts: int, retryable: bool):
        self.what, self.last, self.attempts, self.retryable = what, last, attempts, retryable
        super().__init__(f"{what}: {describe(last)} ({self.how})")

    @property
    def how(self) -> str:
        if self.retryable:
            return f"after {self.attempts} attempt{'s' if self.attempts != 1 else ''}"
        return "not retried: it cannot succeed on retry"


@dataclasses.dataclass(frozen=True)
class Policy:
    attempts: int = 3  # tries in all (1 = no retry)
    backoff_s: float = 1.0  # the wait after the first failed try; doubled after each

    def delay(self, failed_tries: int) -> float:
        return self.backoff_s * 2 ** (failed_tries - 1)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        if isinstance(exc, urllib.error.URLError) and isinstance(exc.reason, BaseException):
            exc = exc.reason
        else:
            exc = exc.__cause__ or exc.__context__


def _judge(e: BaseException) -> bool | None:
    """True: retry; False: do not; None: this link says nothing, look at its cause."""
    if isinstance(e, TransientError):
        return True
    if isinstance(e, urllib.error.HTTPError):
        return e.code >= 500 or e.code in _RETRYABLE_HTTP
    status = getattr(e, "get_http_status_code", None)  # mlflow.exceptions.MlflowException
    if callable(status):
        try:
            code = int(status())
        except (TypeError, ValueError):
            return None
        return code >= 500 or code in _RETRYABLE_HTTP
    response = getattr(e, "response", None)  # requests.HTTPError
    if type(e).__name__ == "HTTPError" and getattr(response, "status_code", None) is not None:
        return response.status_code >= 500 or response.status_code in _RETRYABLE_HTTP
    if isinstance(e, (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)):
        return False
    if isinstance(e, socket.gaierror):
        return e.errno == socket.EAI_AGAIN  # "temporary failure in name resolution"
    if isinstance(e, (TimeoutError, ConnectionError, http.client.IncompleteRead,
                      http.client.RemoteDisconnected, http.client.BadStatusLine)):
        return True
    name, module = type(e).__name__, type(e).__module__
    if module.startswith("requests") and name in {"ConnectionError", "Timeout", "ConnectTimeout",
                                                  "ReadTimeout", "ChunkedEncodingError"}:
        return True
    if module.startswith("sqlalchemy") and name == "OperationalError":  # e.g. database is locked
        return True
    if isinstance(e, PermanentError):
        return False
    return None


def retryable(exc: BaseException) -> bool:
    """Whether trying again can succeed (see the module's docstring)."""
    for e in _chain(exc):
        verdict = _judge(e)
        if verdict is not None:
            return verdict
    return False


def describe(exc: BaseException) -> str:
    """A one-line account of a failure: the innermost informative message."""
    text = str(exc) or type(exc).__name__
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError) and isinstance(exc.reason, BaseException):
        return describe(exc.reason)
    if isinstance(exc, (TimeoutError, socket.timeout)) and not str(exc):
        return "timed out"
    ours = type(exc).__module__.startswith("mnist_audit.")
    return text if ours or isinstance(exc, OSError) else f"{type(exc).__name__}: {text}"


def call(fn: Callable[[], T], policy: Policy, what: str,
         judge: Callable[[BaseException], bool] = retryable) -> T:
    """``fn()`` under ``policy``; raises RetryError (its cause: the last failure).
    ``judge``: whether a failure is worth another try (by default ``retryable``)."""
    attempts = max(1, int(policy.attempts))
    for i in range(1, attempts + 1):
        try:
            return fn()
        except Exception as e:  # noqa: BLE001  (judged below; anything unknown is not retried)
            again = judge(e)
            if not again or i == attempts:
                raise RetryError(what, e, i, again) from e
            wait = policy.delay(i)
            log.warning("%s: %s (try %d of %d); retrying in %.3g s", what, describe(e), i, attempts, wait)
            time.sleep(wait)
    raise AssertionError("unreachable")
