"""Reading a ``PyDataset``'s batches ahead on worker threads or processes, as Keras does when
the dataset asks for ``workers > 1`` (or for ``use_multiprocessing``).

Batches are requested in the order the pass visits them, at most ``max_queue_size`` ahead of
the one being trained on, and handed out in that same order, so training sees exactly the
batches (and the order) of a single-threaded read. A worker's exception is raised to the
caller when its batch is reached. Closing the generator (the end of a pass, or training
stopped early) cancels what was not started and lets the pool go.

Threads suit ``__getitem__`` code that releases the GIL (file reads, numpy, amber's own
kernels). Processes (``use_multiprocessing=True``) suit pure-Python work: each worker gets the
dataset once when it starts (inherited through ``fork`` where the platform has it, pickled
otherwise) and sends back each batch pickled.
"""

import collections
import concurrent.futures
import multiprocessing

# The dataset a worker process reads from, installed once per process by `_install`.
_worker_dataset = None


def _install(dataset):
    global _worker_dataset
    _worker_dataset = dataset


def _read(index):
    return _worker_dataset[index]


def _process_context():
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def uses_workers(dataset):
    """Keras's rule: a pool for ``workers > 1``, or for any workers with multiprocessing."""
    workers = dataset.workers or 0
    return workers > 1 or (workers > 0 and bool(dataset.use_multiprocessing))


def ordered_batches(dataset, indices):
    """Yields ``(index, dataset[index])`` for each of ``indices`` (any iterable, endless too)
    in order, read ahead by ``dataset.workers`` threads or processes."""
    workers = max(1, int(dataset.workers))
    window = max(workers, int(dataset.max_queue_size or 0), 1)
    if dataset.use_multiprocessing:
        pool = concurrent.futures.ProcessPoolExecutor(
            max_workers=workers, mp_context=_process_context(), initializer=_install, initargs=(dataset,))
        read = _read
    else:
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="amber-pydataset")
        read = dataset.__getitem__
    pending = collections.deque()
    indices = iter(indices)
    try:
        for index in indices:
            pending.append((index, pool.submit(read, index)))
            if len(pending) >= window:
                break
        while pending:
            index, future = pending.popleft()
            batch = future.result()
            for following in indices:
                pending.append((following, pool.submit(read, following)))
                break
            yield index, batch
    finally:
        for _, future in pending:
            future.cancel()
        # Threads finish the batch they are on in the background; worker processes are
        # waited for, so none outlives the pass.
        pool.shutdown(wait=bool(dataset.use_multiprocessing), cancel_futures=True)
