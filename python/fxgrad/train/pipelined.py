"""Pipelined training steps: the plugins of step t run in a worker thread while the encoder
computes the parameters of step t + 1 (from the weights before step t's update: one step of
staleness). See ``train.pipeline`` in docs/training.md.

``trainer`` is the :class:`~fxgrad.train.trainer.Trainer` this works for; it is not imported
here, since the trainer imports this module (the import graph has no cycle).
"""

from __future__ import annotations

import concurrent.futures
from typing import Any, Dict, Iterator, Optional

import torch

from .distributed import average_gradients


class PipelinedSteps:
    """An iterator of step records (``loss``, ``grad_norm``, ``faults``) for ``trainer``."""

    def __init__(self, trainer: Any):
        self.trainer = trainer
        self.persistent_buffers = set(trainer.encoder.state_dict().keys())
        self.cuda = trainer.device.type == "cuda"
        self.side_stream = torch.cuda.Stream(trainer.device) if self.cuda else None
        self._steps = self._run()

    def __iter__(self) -> Iterator[Dict[str, Any]]:
        return self

    def __next__(self) -> Dict[str, Any]:
        return next(self._steps)

    def close(self) -> None:
        self._steps.close()

    def encode_detached(self, context: torch.Tensor):
        """theta from a snapshot of the weights, so the live weights can be updated while this
        graph waits for its gradient."""
        from torch.func import functional_call

        encoder = self.trainer.encoder
        params = {n: p.detach().clone().requires_grad_(True) for n, p in encoder.named_parameters()}
        stats = {n: b.clone() for n, b in encoder.named_buffers() if n in self.persistent_buffers}
        theta = functional_call(encoder, {**params, **stats}, (context.to(self.trainer.device),))
        with torch.no_grad():
            live = dict(encoder.named_buffers())
            for n, b in stats.items():
                live[n].copy_(b)
        return self.trainer.masked(theta), params

    def _ready_event(self) -> Optional[Any]:
        if not self.cuda:
            return None
        event = torch.cuda.Event()
        event.record(torch.cuda.current_stream(self.trainer.device))
        return event

    def plugin_job(self, theta: torch.Tensor, batch, ready: Optional[Any]) -> tuple:
        """The worker thread's part of a step: plugins forward, loss, SPSA vjp. On CUDA it runs
        on its own stream (after ``ready``, the event marking theta computed), so its copies and
        synchronisations do not wait for the encoder's next forward."""
        if ready is None:
            return self._plugin_work(theta, batch) + (None,)
        stream = self.side_stream
        with torch.cuda.stream(stream):
            stream.wait_event(ready)
            theta.record_stream(stream)
            loss, grad = self._plugin_work(theta, batch)
            done = torch.cuda.Event()
            done.record(stream)
        return loss, grad, done

    def _plugin_work(self, theta: torch.Tensor, batch) -> tuple:
        leaf = theta.detach().requires_grad_(True)
        result = self.trainer.frame_step(batch, leaf, f"train step {self.trainer.step + 1}")
        result.loss.backward()
        return result.healthy_loss, leaf.grad

    def _run(self):
        trainer = self.trainer
        executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="fxgrad-plugins")
        future = None
        try:
            trainer.pending_stream = trainer.streamer.state_dict()
            batch = next(trainer.streamer)
            theta, snapshot = self.encode_detached(batch.context)
            while True:
                trainer.stream_before = trainer.pending_stream
                trainer.in_update = False
                future = executor.submit(self.plugin_job, theta, batch, self._ready_event())
                trainer.in_flight["train"] = (batch, trainer.splits.train)
                upcoming_stream = trainer.streamer.state_dict()
                upcoming = next(trainer.streamer)
                upcoming_theta, upcoming_snapshot = self.encode_detached(upcoming.context)
                loss, grad_theta, done = future.result()
                future = None
                faults = trainer.faults.after_step(trainer.layer, "train", trainer.step + 1, trainer.streamer, batch)
                self._apply(theta, grad_theta, done, snapshot)
                norm = trainer.clip_gradients()
                trainer.in_update = True
                trainer.optimizer.step()
                trainer.average.update(trainer.encoder)
                trainer.pending_stream = upcoming_stream
                batch, theta, snapshot = upcoming, upcoming_theta, upcoming_snapshot
                yield {"loss": loss, "grad_norm": norm, "faults": faults}
        finally:
            if future is not None:
                try:
                    future.result()
                except Exception:
                    pass  # the error that ends the loop is already on its way up
            executor.shutdown(wait=True)

    def _apply(self, theta: torch.Tensor, grad_theta: torch.Tensor, done: Optional[Any], snapshot: dict) -> None:
        """Backpropagates the plugins' gradient through the encoder's snapshot graph onto the
        live weights (averaged over ranks under torchrun)."""
        trainer = self.trainer
        if done is not None:
            main = torch.cuda.current_stream(trainer.device)
            main.wait_event(done)
            grad_theta.record_stream(main)
        theta.backward(grad_theta)
        for name, parameter in trainer.encoder.named_parameters():
            parameter.grad = snapshot[name].grad
        if trainer.world.distributed:
            average_gradients(trainer.encoder.parameters(), trainer.world.world_size)
