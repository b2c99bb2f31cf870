"""Predictions by scikit-learn itself (models that are not compiled), batched across requests.

scikit-learn pays per call far more than per row: a 100-tree forest takes about 4 ms for one
row and barely more for fifty. So the requests that arrive while one prediction runs wait
together, and the next call predicts all their rows at once, in a worker thread (the event loop,
with the health probes, never waits on one). Nothing waits on a timer: a request that finds no
prediction running starts one at once, so a lone request is answered as fast as unbatched, and
under load the batches grow by themselves (as Triton's dynamic batcher does with no queue delay).

Each request still gets exactly its own rows' answers. They are the answers the rows would have
alone: scikit-learn predicts every row on its own. Models that multiply matrices (linear models,
SVMs, KNN) can round the last bit differently in a batch of another size, as they do when the
same rows come in one request or in several.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from .metrics import Metrics
from .prediction import Prediction


class _Request(NamedTuple):
    matrix: np.ndarray
    answer: asyncio.Future[Prediction]


class Batches:
    def __init__(
        self,
        predict: Callable[[np.ndarray], Prediction],
        threads: int,
        max_rows: int,
        metrics: Metrics,
    ) -> None:
        """`predict` runs in at most `threads` worker threads at once, on at most `max_rows`
        rows (or one request's rows, if it has more)."""
        self._predict = predict
        self._metrics = metrics
        self._threads = threads
        self._max_rows = max_rows
        self._waiting: deque[_Request] = deque()
        # The tasks that take waiting requests into calls: at most `threads`. Held here, as the
        # event loop holds tasks only weakly.
        self._callers: set[asyncio.Task[None]] = set()

    async def predict(self, matrix: np.ndarray) -> Prediction:
        answer: asyncio.Future[Prediction] = asyncio.get_running_loop().create_future()
        self._waiting.append(_Request(matrix, answer))
        if len(self._callers) < self._threads:
            self._callers.add(asyncio.create_task(self._call_while_waiting()))
        return await answer

    async def _call_while_waiting(self) -> None:
        try:
            while self._waiting:
                await self._call(self._next_batch())
        finally:
            # Without an await since the queue was seen empty: a request queued from now on
            # finds a free caller and starts one.
            self._callers.discard(asyncio.current_task())

    def _next_batch(self) -> list[_Request]:
        """The waiting requests, in their order, up to `max_rows` rows (or the first request)."""
        batch: list[_Request] = []
        rows = 0
        while self._waiting:
            request = self._waiting[0]
            if request.answer.done():  # its client left
                self._waiting.popleft()
                continue
            if batch and rows + len(request.matrix) > self._max_rows:
                break
            batch.append(self._waiting.popleft())
            rows += len(request.matrix)
        return batch

    async def _call(self, batch: list[_Request]) -> None:
        if not batch:
            return
        matrix = batch[0].matrix if len(batch) == 1 else np.concatenate([r.matrix for r in batch])
        self._metrics.batched(len(batch))
        try:
            prediction = await asyncio.to_thread(self._predict, matrix)
        except Exception as exc:
            if len(batch) == 1:
                _settle(batch[0].answer, exc)
                return
            # One request's rows can fail the whole call (a value the model refuses): each
            # request again on its own, so only that one fails, with its own error.
            for request in batch:
                await self._call([request])
            return
        probabilities = prediction.probabilities
        start = 0
        for request in batch:
            end = start + len(request.matrix)
            _settle(
                request.answer,
                Prediction(
                    prediction.outputs[start:end],
                    None if probabilities is None else probabilities[start:end],
                ),
            )
            start = end


def _settle(answer: asyncio.Future[Prediction], outcome: Prediction | Exception) -> None:
    if answer.done():  # its client left while it was predicted
        return
    if isinstance(outcome, Exception):
        answer.set_exception(outcome)
    else:
        answer.set_result(outcome)
