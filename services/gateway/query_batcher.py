"""The gateway's search queries, gathered into QueryBatch calls.

On Python gRPC a call costs about as much CPU, on each side, as the in-memory search it carries
(0.3-0.4 ms each, docs/benchmarks.md), so under load most of the search service's time went to
the calls. Queries now travel together, as in a database's group commit: a query leaves on the
loop's next turn when fewer than `max_calls` batches are in flight (so a lone query waits for
nothing), else with everything that arrived by the time one of them returns (up to `max_batch`).
Under load the batches grow with the traffic.

Each query keeps its own outcome: one unknown id fails that query alone, with the status a
single Query would have given. The batch call's deadline is the latest of its callers'; a caller
whose own deadline passes first is cancelled by gRPC as before.
"""

import asyncio
import contextvars
import time
from typing import Awaitable, Callable

import grpc
import prometheus_client

from reelvec import channels, errors
from reelvec.server import caller_deadline
from reelvec.v1 import search_pb2

_CODES = {code.value[0]: code for code in grpc.StatusCode}
BATCH_SIZE = prometheus_client.Histogram(
    "reelvec_query_batch_size", "queries per QueryBatch call from the gateway", buckets=(1, 2, 4, 8, 16, 32, 64, 128)
)

Send = Callable[[search_pb2.QueryBatchRequest, float], Awaitable[search_pb2.QueryBatchResponse]]
_Waiting = tuple[search_pb2.QueryRequest, asyncio.Future, float | None]


class QueryBatcher:
    def __init__(self, send: Send, timeout: float, max_batch: int = 64, max_calls: int = 2):
        """`send(request, timeout)` makes the QueryBatch call; `timeout` bounds it when no caller
        has a deadline. At most `max_calls` batches are in flight; queries wait for one to return."""
        self._send = send
        self._timeout = timeout
        self._max_batch = max_batch
        self._max_calls = max_calls
        self._waiting: list[_Waiting] = []
        self._flush_due = False
        self._calls: set[asyncio.Task] = set()  # also keeps them alive: the loop holds only weak references

    async def query(self, request: search_pb2.QueryRequest) -> search_pb2.QueryResponse:
        loop = asyncio.get_running_loop()
        answer = loop.create_future()
        self._waiting.append((request, answer, caller_deadline.get()))
        if len(self._calls) < self._max_calls and not self._flush_due:
            self._flush_due = True
            # a context of its own: the batch belongs to no one caller's deadline or request id
            loop.call_soon(self._flush, context=contextvars.Context())
        return await answer

    def _flush(self, _done: asyncio.Task | None = None) -> None:
        if _done is not None:
            self._calls.discard(_done)
        self._flush_due = False
        while self._waiting and len(self._calls) < self._max_calls:
            batch, self._waiting = self._waiting[: self._max_batch], self._waiting[self._max_batch :]
            call = asyncio.get_running_loop().create_task(self._call(batch), context=contextvars.Context())
            self._calls.add(call)
            call.add_done_callback(self._flush)  # the next batch leaves as this one returns

    async def _call(self, batch: list[_Waiting]) -> None:
        BATCH_SIZE.observe(len(batch))
        timeout = self._timeout
        deadlines = [deadline for _, _, deadline in batch]
        if None not in deadlines:
            timeout = min(timeout, max(deadlines) - time.monotonic())
        try:
            if timeout <= 0:
                raise errors.DeadlineExceeded("the callers' deadlines passed before the search service was called")
            response = await self._send(search_pb2.QueryBatchRequest(queries=[q for q, _, _ in batch]), timeout)
        except Exception as exc:  # the whole call failed: every query with it
            for _, answer, _ in batch:
                if not answer.done():  # done: its caller was cancelled
                    answer.set_exception(exc)
            return
        for (_, answer, _), result in zip(batch, response.results, strict=True):
            if answer.done():
                continue
            if result.HasField("error"):
                code = _CODES.get(result.error.code, grpc.StatusCode.UNKNOWN)
                answer.set_exception(channels.upstream("search service", code, result.error.message))
            else:
                answer.set_result(result.response)
