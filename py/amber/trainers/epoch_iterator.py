"""How many batches of a generator or PyDataset make one epoch (Keras 3's rules).

- With ``steps`` (``steps_per_epoch`` / ``validation_steps`` / ``steps``), an epoch is that
  many batches and the next epoch continues the same pass where this one stopped; a sized
  source (PyDataset) is restarted once its pass is used up, cutting that epoch short.
- Without it, an epoch is one whole pass. A generator's length is learned when it runs out;
  later epochs restart it, which replays only the batches read ahead (see
  ``GeneratorAdapter``), as in Keras.
- Running out of data before the epoch's steps are done ends the epoch early with a warning.
"""

import warnings


def _warn_ran_out():
    warnings.warn("The input ran out of data, so this epoch ended early. A generator or dataset must "
                  "produce at least `steps_per_epoch * epochs` batches (or leave steps_per_epoch unset to "
                  "make each epoch one pass over it).", stacklevel=4)


class EpochIterator:
    def __init__(self, adapter, steps=None):
        if steps is not None:
            steps = int(steps)
            if steps <= 0:
                raise ValueError(f"The number of steps must be a positive integer, got {steps}.")
        self.adapter = adapter
        self.steps = steps
        self._known = adapter.num_batches  # a pass's length, once known
        self._current = None  # the pass in progress, kept across epochs when `steps` is set
        self._drawn = 0  # draws from `_current`, the failed one included (Keras's count)

    @property
    def num_batches(self):
        """Batches per epoch, or None while it is unknown (an unsized generator)."""
        return self.steps or self._known

    def _ran_out(self):
        if self._known is None:
            self._known = self._drawn
        self._current = None
        _warn_ran_out()

    def epoch(self):
        """Yields this epoch's ``(x, y, sample_weight)`` batches. Close it when stopping
        early so the source's ``on_epoch_end`` runs right away."""
        self.adapter.on_epoch_begin()
        try:
            limit = self.steps or self._known
            if self._current is None or self.steps is None:
                self._current, self._drawn = self.adapter.iterator(), 0
            step = 0
            while limit is None or step < limit:
                if limit is not None and self._known and self._drawn >= self._known:
                    if self.steps:
                        _warn_ran_out()
                    break
                self._drawn += 1
                try:
                    batch = next(self._current)
                except StopIteration:
                    self._ran_out()
                    break
                yield batch
                step += 1
            if self._known and self._drawn >= self._known:
                self._current, self._drawn = None, 0
        finally:
            self.adapter.on_epoch_end()
