"""Python generators and ``PyDataset`` objects as a source of batches for fit/evaluate/predict.

Arrays keep their own fast path in ``amber.models.training_loop``; this module covers the
inputs that already come in batches. An adapter checks what the user passed, turns every
batch into an ``(x, y, sample_weight)`` triple and says how many batches a pass holds
(``None`` when only running it out tells). ``epoch_iterator`` cuts passes into epochs.
"""

import itertools
import random
import types
import warnings

import numpy as np

from amber.trainers import prefetch

# Keras looks at this many leading batches before training (to learn their structure) and
# hands them out again every time the generator is restarted.
_PEEKED_BATCHES = 2


class PyDataset:
    """Base class for a dataset written in Python: override ``__len__`` (the number of
    batches) and ``__getitem__`` (batch ``index``, a whole batch: ``x``, ``(x,)``,
    ``(x, y)``, ``(x, y, sample_weight)`` or a dict of inputs). ``on_epoch_begin`` /
    ``on_epoch_end`` run around every epoch, e.g. to reshuffle.

    ``workers``, ``use_multiprocessing`` and ``max_queue_size`` work as in Keras: with
    ``workers > 1`` (or ``use_multiprocessing=True``) that many threads (or processes) read
    batches ahead, at most ``max_queue_size`` of them, while the model trains; the batches and
    their order are those of a single-threaded read (see ``amber.trainers.prefetch``).
    ``__getitem__`` must then be safe to call from several threads at once (or, for processes,
    the dataset picklable where the platform cannot ``fork``). With the default
    ``workers=1`` batches are read in the calling thread, in index order (a shuffled order when
    ``fit(shuffle=True)``). ``keras.utils.Sequence`` is the same class under its older name.
    """

    def __init__(self, workers=1, use_multiprocessing=False, max_queue_size=10):
        self._workers = workers
        self._use_multiprocessing = use_multiprocessing
        self._max_queue_size = max_queue_size

    def _default_if_init_skipped(self, name, default):
        if not hasattr(self, name):
            setattr(self, name, default)
            warnings.warn(f"{type(self).__name__} does not call `super().__init__(**kwargs)` in its "
                          f"constructor; `workers`, `use_multiprocessing` and `max_queue_size` belong "
                          f"there (passing them to fit() has no effect).", stacklevel=3)
        return getattr(self, name)

    @property
    def workers(self):
        return self._default_if_init_skipped("_workers", 1)

    @workers.setter
    def workers(self, value):
        self._workers = value

    @property
    def use_multiprocessing(self):
        return self._default_if_init_skipped("_use_multiprocessing", False)

    @use_multiprocessing.setter
    def use_multiprocessing(self, value):
        self._use_multiprocessing = value

    @property
    def max_queue_size(self):
        return self._default_if_init_skipped("_max_queue_size", 10)

    @max_queue_size.setter
    def max_queue_size(self, value):
        self._max_queue_size = value

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must implement __getitem__(index), returning "
                                  f"batch number `index`.")

    @property
    def num_batches(self):
        """Batches per pass (``len(self)``); ``None`` means the dataset never ends."""
        if hasattr(self, "__len__"):
            return len(self)
        raise NotImplementedError(f"{type(self).__name__} must implement __len__ (or the `num_batches` "
                                  f"property, returning None for an endless dataset).")

    def __iter__(self):
        count = self.num_batches
        for index in itertools.count() if count is None else range(count):
            yield self[index]

    def on_epoch_begin(self):
        pass

    def on_epoch_end(self):
        pass


def is_generator(x):
    return isinstance(x, types.GeneratorType)


def is_batch_source(x):
    """True for the inputs that yield whole batches: Python generators and PyDatasets."""
    return is_generator(x) or isinstance(x, PyDataset)


def describe(value, depth=0):
    """A short description of a yielded value (types and shapes, not the numbers)."""
    if isinstance(value, (tuple, list)) and depth < 2:
        inner = ", ".join(describe(item, depth + 1) for item in value[:4])
        more = ", ..." if len(value) > 4 else ""
        return f"{type(value).__name__} of {len(value)} ({inner}{more})"
    if isinstance(value, dict) and depth < 2:
        return "dict {" + ", ".join(f"{key!r}: {describe(item, depth + 1)}"
                                    for key, item in list(value.items())[:4]) + "}"
    shape = getattr(value, "shape", None)
    if shape is not None:
        return f"{type(value).__name__} of shape {tuple(shape)}"
    return type(value).__name__


def _unpack(batch, source):
    """(x,), (x, y) or (x, y, sample_weight) as a full triple; anything else is refused."""
    if not isinstance(batch, tuple) or not 1 <= len(batch) <= 3:
        raise ValueError(f"{source} must produce a tuple (x,), (x, y) or (x, y, sample_weight) per batch; "
                         f"it produced a {describe(batch)}.")
    return tuple(batch) + (None,) * (3 - len(batch))


class GeneratorAdapter:
    """A Python generator: one pass, of unknown length, until the generator ends.

    Like Keras, the first batches are read up front (to refuse an empty or malformed
    generator before training starts) and are given out again at every restart, so an epoch
    after the generator is exhausted sees just those batches."""

    num_batches = None

    def __init__(self, generator):
        self._generator = generator
        self._peeked = list(itertools.islice(generator, _PEEKED_BATCHES))
        if not self._peeked:
            raise ValueError("The generator passed to the model yielded no batch: it must yield at least one "
                             "(x, y) tuple.")
        _unpack(self._peeked[0], "A generator passed to the model")

    def iterator(self):
        for batch in itertools.chain(self._peeked, self._generator):
            yield _unpack(batch, "A generator passed to the model")

    def on_epoch_begin(self):
        pass

    def on_epoch_end(self):
        pass


class PyDatasetAdapter:
    """A ``PyDataset``: ``len(dataset)`` batches per pass, read by index in this thread, or
    ahead by the dataset's workers (``prefetch``).

    ``shuffle`` visits the batches in a random order (Python's ``random``, as Keras does,
    so ``set_random_seed`` makes it repeatable); ``class_weight`` becomes per-sample
    weights from each batch's targets."""

    def __init__(self, dataset, class_weight=None, shuffle=False):
        self.dataset = dataset
        self.class_weight = class_weight
        self.shuffle = shuffle
        # Read (and warn about a skipped super().__init__) up front, as Keras does.
        self.dataset.workers, self.dataset.use_multiprocessing, self.dataset.max_queue_size  # noqa: B018
        if self.num_batches is None and shuffle:
            warnings.warn("`shuffle=True` is ignored for an endless PyDataset (num_batches is None): it is "
                          "expected to produce shuffled batches itself.", stacklevel=4)

    @property
    def num_batches(self):
        return self.dataset.num_batches

    def _standardize(self, batch, index):
        source = f"{type(self.dataset).__name__}.__getitem__({index})"
        if isinstance(batch, dict):
            return batch, None, None
        if isinstance(batch, np.ndarray):
            batch = (batch,)
        elif isinstance(batch, list):
            batch = tuple(batch)
        if not isinstance(batch, tuple) or not 1 <= len(batch) <= 3:
            raise ValueError(f"{source} must return a dict of inputs or a tuple (x,), (x, y) or "
                             f"(x, y, sample_weight); it returned a {describe(batch)}.")
        x, y, sample_weight = _unpack(batch, source)
        if self.class_weight is not None:
            if sample_weight is not None:
                raise ValueError(f"{source} returned sample weights and fit() was given `class_weight`: "
                                 f"use one or the other.")
            if y is not None:
                sample_weight = class_weight_to_sample_weights(y, self.class_weight)
        return x, y, sample_weight

    def iterator(self):
        count = self.num_batches
        if count is None:
            indices = itertools.count()
        else:
            indices = list(range(count))
            if self.shuffle:
                random.shuffle(indices)
        if prefetch.uses_workers(self.dataset):
            for index, batch in prefetch.ordered_batches(self.dataset, indices):
                yield self._standardize(batch, index)
            return
        for index in indices:
            yield self._standardize(self.dataset[index], index)

    def on_epoch_begin(self):
        self.dataset.on_epoch_begin()

    def on_epoch_end(self):
        self.dataset.on_epoch_end()


def class_weight_to_sample_weights(y, class_weight):
    """One weight per sample: the weight of its class (the argmax of a one-hot row, the
    rounded label otherwise), 1.0 for a class missing from ``class_weight``."""
    labels = np.asarray(y)
    if labels.ndim > 1:
        labels = np.argmax(labels, axis=-1) if labels.shape[-1] != 1 else labels[..., 0]
    labels = np.round(labels).astype("int64").reshape(labels.shape[0], -1)[:, 0]
    return np.array([class_weight.get(int(label), 1.0) for label in labels], dtype=np.float32)


def _refuse(argument, what, source):
    raise ValueError(f"`{argument}` cannot be passed when `x` is a {source}: {what} must come from the "
                     f"{source} itself, in each batch it produces.")


def get_data_adapter(x, y=None, sample_weight=None, class_weight=None, shuffle=False):
    """The adapter for a generator or PyDataset ``x``, after refusing arguments that only
    make sense for arrays."""
    if isinstance(x, PyDataset):
        if y is not None:
            _refuse("y", "the targets", "PyDataset")
        if sample_weight is not None:
            _refuse("sample_weight", "the sample weights", "PyDataset")
        return PyDatasetAdapter(x, class_weight=class_weight, shuffle=shuffle)
    if is_generator(x):
        if y is not None:
            _refuse("y", "the targets", "generator")
        if sample_weight is not None:
            _refuse("sample_weight", "the sample weights", "generator")
        if class_weight is not None:
            raise ValueError(f"`class_weight` is not supported when `x` is a Python generator; yield "
                             f"(x, y, sample_weight) batches instead. Received: class_weight={class_weight}")
        if shuffle:
            warnings.warn("`shuffle=True` is ignored when `x` is a generator: the generator is expected to "
                          "yield shuffled batches itself.", stacklevel=4)
        return GeneratorAdapter(x)
    raise ValueError(f"Unrecognized data type: x is a {type(x).__name__}. Expected numpy arrays (or a list/dict "
                     f"of them), a Python generator or a keras.utils.PyDataset.")
