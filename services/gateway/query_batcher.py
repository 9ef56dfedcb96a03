"""The gateway's search queries, gathered into QueryBatch calls (reelvec/group_commit.py).

On Python gRPC a call costs about as much CPU, on each side, as the in-memory search it carries
(0.3-0.4 ms each, docs/benchmarks.md), so under load most of the search service's time went to
the calls. Queries that arrive together now travel together; a lone query waits for nothing.

Each query keeps its own outcome: one unknown id fails that query alone, with the status a
single Query would have given. The batch call's deadline is the latest of its callers'; a caller
whose own deadline passes first is cancelled by gRPC as before.
"""

import time
from typing import Awaitable, Callable

import grpc
import prometheus_client

from reelvec import channels, errors
from reelvec.group_commit import GroupCommit
from reelvec.server import caller_deadline
from reelvec.v1 import search_pb2

_CODES = {code.value[0]: code for code in grpc.StatusCode}
BATCH_SIZE = prometheus_client.Histogram(
    "reelvec_query_batch_size", "queries per QueryBatch call from the gateway", buckets=(1, 2, 4, 8, 16, 32, 64, 128)
)

Send = Callable[[search_pb2.QueryBatchRequest, float], Awaitable[search_pb2.QueryBatchResponse]]


class QueryBatcher:
    def __init__(self, send: Send, timeout: float, max_batch: int = 64, max_calls: int = 2):
        """`send(request, timeout)` makes the QueryBatch call; `timeout` bounds it when no caller
        has a deadline. At most `max_calls` batches are in flight: two keep the search service busy
        with one while the other returns, and gather twice the queries per call that three did at
        moderate load (docs/search.md, Batched queries)."""
        self._send = send
        self._timeout = timeout
        self._batches = GroupCommit(self._call, max_batch, max_calls)

    async def query(self, request: search_pb2.QueryRequest) -> search_pb2.QueryResponse:
        return await self._batches.submit((request, caller_deadline.get()))

    async def _call(self, batch: list[tuple[search_pb2.QueryRequest, float | None]]):
        BATCH_SIZE.observe(len(batch))
        timeout = self._timeout
        deadlines = [deadline for _, deadline in batch]
        if None not in deadlines:
            timeout = min(timeout, max(deadlines) - time.monotonic())
        if timeout <= 0:
            raise errors.DeadlineExceeded("the callers' deadlines passed before the search service was called")
        response = await self._send(search_pb2.QueryBatchRequest(queries=[q for q, _ in batch]), timeout)
        return [
            channels.upstream("search service", _CODES.get(r.error.code, grpc.StatusCode.UNKNOWN), r.error.message)
            if r.HasField("error") else r.response
            for r in response.results
        ]
