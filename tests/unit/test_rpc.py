"""Raw unary calls: the library's errors, its retry policy, one deadline for all attempts."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from google.api_core import exceptions, retry

from shared.adapters.rpc import ServerStreamCall, UnaryCall, routing_metadata


class Status(grpc.RpcError, grpc.Call):  # type: ignore[misc]
    """A failed call as gRPC raises it."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    def trailing_metadata(self) -> tuple[()]:
        return ()

    def initial_metadata(self) -> tuple[()]:
        return ()

    def is_active(self) -> bool:
        return False

    def time_remaining(self) -> None:
        return None

    def cancel(self) -> bool:
        return False

    def add_callback(self, callback: Callable[[], None]) -> bool:
        return False


class Channel:
    """A channel whose one method answers from a script: errors are raised, the rest
    returned. Records each call's timeout and metadata."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.calls: list[dict[str, Any]] = []
        self.method = ""

    def unary_unary(self, method: str, **serializers: Any) -> Callable[..., Any]:
        self.method = method
        assert set(serializers) == {"request_serializer", "response_deserializer"}

        def call(request: Any, *, timeout: float, metadata: Any) -> Any:
            self.calls.append({"request": request, "timeout": timeout, "metadata": metadata})
            answer = self.answers.pop(0)
            if isinstance(answer, BaseException):
                raise answer
            return answer

        return call

    def unary_stream(self, method: str, **serializers: Any) -> Callable[..., Any]:
        """Each answer is a stream: a list of responses, an error ending it part-way."""
        call = self.unary_unary(method, **serializers)

        def stream(request: Any, *, timeout: float, metadata: Any) -> Any:
            for response in call(request, timeout=timeout, metadata=metadata):
                if isinstance(response, BaseException):
                    raise response
                yield response

        return stream


class Message:
    SerializeToString = staticmethod(lambda message: b"")
    FromString = staticmethod(lambda data: None)


def retrying_at_once(*retryable: type[Exception]) -> retry.Retry:
    """The library's retry policy on ``retryable``, with no wait between attempts."""
    return retry.Retry(
        initial=0.0, maximum=0.0, predicate=retry.if_exception_type(*retryable), timeout=5.0
    )


def unary(channel: Channel, **options: Any) -> UnaryCall:
    return UnaryCall(channel, "/pkg.Service/Method", Message, Message, **options)


def test_a_failure_raises_the_api_core_error_of_its_status() -> None:
    call = unary(Channel(Status(grpc.StatusCode.FAILED_PRECONDITION, "stale")), timeout=5.0)
    with pytest.raises(exceptions.FailedPrecondition, match="stale"):
        call("request")


def test_retryable_errors_are_retried_and_others_are_not() -> None:
    policy = retrying_at_once(exceptions.ServiceUnavailable)
    channel = Channel(Status(grpc.StatusCode.UNAVAILABLE, "down"), "answer")
    assert unary(channel, timeout=5.0, retry=policy)("request") == "answer"
    assert len(channel.calls) == 2

    refused = Channel(Status(grpc.StatusCode.INVALID_ARGUMENT, "bad"), "never")
    with pytest.raises(exceptions.InvalidArgument):
        unary(refused, timeout=5.0, retry=policy)("request")
    assert len(refused.calls) == 1


def test_every_attempt_gets_what_is_left_of_one_deadline() -> None:
    """The failed attempt took 50 ms (the retry's own wait is jittered, possibly to 0):
    the next attempt's deadline is that much shorter."""
    policy = retrying_at_once(exceptions.ServiceUnavailable)

    class SlowFirst(Channel):
        def unary_unary(self, method: str, **serializers: Any) -> Callable[..., Any]:
            call = super().unary_unary(method, **serializers)

            def slow(request: Any, *, timeout: float, metadata: Any) -> Any:
                if not self.calls:
                    time.sleep(0.05)
                return call(request, timeout=timeout, metadata=metadata)

            return slow

    channel = SlowFirst(Status(grpc.StatusCode.UNAVAILABLE, "down"), "answer")
    unary(channel, timeout=2.0, retry=policy)("request")
    first, second = (call["timeout"] for call in channel.calls)
    assert first <= 2.0
    assert second < first - 0.01


def test_the_calls_metadata_follows_the_methods() -> None:
    channel = Channel("answer")
    call = unary(channel, timeout=5.0, metadata=[("google-cloud-resource-prefix", "db")])
    call("request", (routing_metadata("name", "projects/p/databases/(default)/documents/a/b"),))
    assert channel.method == "/pkg.Service/Method"
    assert channel.calls[0]["metadata"] == (
        ("google-cloud-resource-prefix", "db"),
        ("x-goog-request-params", "name=projects/p/databases/%28default%29/documents/a/b"),
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", "projects/p/databases/(default)/documents/forwarded/0f3a9c"),
        ("database", "projects/demo-x/databases/(default)"),
        ("topic", "projects/p/topics/ga4-enriched"),
        ("name", "projects/p/databases/d b/documents/a&b=c/ü~é+%"),
        ("a b", "x/y?z#w"),
    ],
)
def test_the_routing_header_is_the_one_the_generated_method_sends(field: str, value: str) -> None:
    from google.api_core.gapic_v1 import routing_header

    expected = routing_header.to_grpc_metadata(((field, value),))  # type: ignore[no-untyped-call]
    assert routing_metadata(field, value) == expected


def test_the_absent_status_is_an_answer_not_an_error() -> None:
    """A read of a document that is not there returns None at once: no error is raised,
    nothing is retried; other failures still raise."""
    policy = retrying_at_once(exceptions.NotFound)
    channel = Channel(Status(grpc.StatusCode.NOT_FOUND, "no document"), "never")
    read = unary(channel, timeout=5.0, retry=policy, absent=grpc.StatusCode.NOT_FOUND)
    assert read("request") is None
    assert len(channel.calls) == 1

    failing = Channel(Status(grpc.StatusCode.PERMISSION_DENIED, "no role"))
    with pytest.raises(exceptions.PermissionDenied):
        unary(failing, timeout=5.0, absent=grpc.StatusCode.NOT_FOUND)("request")


def test_a_stream_is_read_to_its_end_and_retried_from_its_start() -> None:
    """A stream that fails part-way is asked again whole: the answer is the second
    stream's responses only, never the first's half followed by the second."""
    policy = retrying_at_once(exceptions.ServiceUnavailable)
    channel = Channel(["a", Status(grpc.StatusCode.UNAVAILABLE, "reset")], ["a", "b", "c"])
    call = ServerStreamCall(
        channel, "/pkg.Service/Stream", Message, Message, timeout=5.0, retry=policy
    )
    assert call("request") == ["a", "b", "c"]
    assert len(channel.calls) == 2

    refused = Channel(["a", Status(grpc.StatusCode.INVALID_ARGUMENT, "bad")])
    with pytest.raises(exceptions.InvalidArgument):
        ServerStreamCall(refused, "/pkg.Service/Stream", Message, Message, timeout=5.0)("request")
