"""The one shape of a served model, whichever service serves it and wherever it runs.

A Model is built (cheap: nothing read, nothing contacted), loaded once (`load`: opens its weights,
or waits until the server that holds them answers), then asked for batches (`predict`: a batch of
inputs in, one result per input out, in the same order). `name` says what it serves, model and
version, as responses and stored vectors name it ("efficientnet_lite0:2",
"faster-whisper:base:int8"); a model built for "the newest" learns it in `load`. `max_batch` is the
largest batch the model runs in one go (0: any); `predict` takes any batch, splitting it if it must.

All three methods are coroutines, because the encoder's Triton model waits on the network. A model
that computes in this process (ONNX Runtime, CTranslate2) runs that work in a worker thread
(asyncio.to_thread) inside `predict` and `load`, so the event loop keeps answering while it works;
how many calls run at once is bounded by the caller (a semaphore, GroupCommit's max_calls) or by
the model itself (a lock), whichever knows the cost.
"""

import abc


class Model(abc.ABC):
    name: str = ""
    max_batch: int = 0

    @abc.abstractmethod
    async def load(self, timeout: float) -> None:
        """Returns once predict can answer; errors.Unavailable when a server holding the model does
        not answer within `timeout` seconds (a model in this process loads in the time it takes)."""

    @abc.abstractmethod
    async def predict(self, batch):
        """One result per input of `batch`, in order."""

    async def close(self) -> None:
        return None
