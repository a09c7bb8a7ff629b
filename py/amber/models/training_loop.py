"""The loops behind fit / evaluate / predict and the *_on_batch calls.

Data are numpy arrays (or lists/dicts of them), Python generators or ``PyDataset``s. Arrays
are converted once up front (floating ones to float32, as Keras's array adapter does) and
batches are slices (views) when not shuffling, so the per-batch Python work is the forward
pass, the tape and the update. Generators and PyDatasets already come in batches: their
adapters (``amber.trainers``) check them and decide how many batches make an epoch, and
each batch is converted as it arrives.
"""

import math

import numpy as np

from amber import ops
from amber.layers import tree
from amber.trainers.data_adapters import get_data_adapter, is_batch_source
from amber.trainers.epoch_iterator import EpochIterator


def _as_arrays(data):
    def convert(value):
        if value is None:
            return None
        array = np.asarray(value)
        if array.dtype.kind == "f" and array.dtype != np.float32:
            array = array.astype(np.float32)
        return array

    return tree.map_structure(convert, data)


def _num_samples(x):
    if type(x) is np.ndarray and x.ndim:  # the per-batch case, without the tree walk
        return x.shape[0]
    leaves = [leaf for leaf in tree.flatten(x) if leaf is not None]
    if not leaves:
        raise ValueError("No input data: pass `x` (a numpy array, or a list/dict of arrays).")
    sizes = {int(np.shape(leaf)[0]) for leaf in leaves}
    if len(sizes) != 1:
        raise ValueError(f"Data cardinality is ambiguous: the arrays have different first dimensions "
                         f"{sorted(sizes)}. Make sure all arrays contain the same number of samples.")
    return sizes.pop()


def _take(data, index):
    if data is None:
        return None
    if type(data) is np.ndarray:
        # take() gathers shuffled rows like fancy indexing, with less overhead
        return data[index] if type(index) is slice else data.take(index, axis=0)
    return tree.map_structure(lambda a: None if a is None else a[index], data)


def _unpack_xy(x, y, sample_weight):
    """Keras accepts (x, y) or (x, y, sample_weight) tuples in place of x."""
    if y is None and isinstance(x, tuple) and 2 <= len(x) <= 3:
        return (x[0], x[1], x[2] if len(x) == 3 else sample_weight)
    return x, y, sample_weight


def _class_weights(y, class_weight):
    labels = np.asarray(tree.flatten(y)[0])
    if labels.ndim > 1 and labels.shape[-1] > 1:
        labels = np.argmax(labels, axis=-1)
    labels = labels.reshape(labels.shape[0], -1)[:, 0].astype(int)
    return np.array([class_weight.get(int(c), 1.0) for c in labels], dtype=np.float32)


def _batches(num_samples, batch_size, shuffle, steps=None):
    if shuffle:
        from amber.backend import random

        order = random.generator().permutation(num_samples)
        index_list = [order[i:i + batch_size] for i in range(0, num_samples, batch_size)]
    else:
        index_list = [slice(i, min(i + batch_size, num_samples)) for i in range(0, num_samples, batch_size)]
    if steps is not None:
        index_list = index_list[:steps]
    return index_list


def _resolve_verbose(verbose):
    if verbose == "auto":
        return 1
    return int(verbose)


def _callback_list(model, callbacks, verbose, epochs, steps, add_history):
    from amber import callbacks as callbacks_module

    return callbacks_module.CallbackList(callbacks, add_history=add_history, add_progbar=verbose != 0,
                                         model=model, verbose=verbose, epochs=epochs, steps=steps)


def _refuse_iterator(x):
    """Keras accepts generators but no other iterators; say so instead of failing on the
    iterator as if it were an array."""
    if hasattr(x, "__next__") and not is_batch_source(x):
        raise ValueError(f"Unrecognized data type: x is a {type(x).__name__} iterator. Pass numpy arrays, a "
                         f"keras.utils.PyDataset or a Python generator (e.g. `(batch for batch in iterator)`).")


def _array_epoch(x, y, sample_weight, batch_size, shuffle, steps):
    num_samples = _num_samples([x, y, sample_weight])
    for index in _batches(num_samples, batch_size, shuffle, steps):
        yield _take(x, index), _take(y, index), _take(sample_weight, index)


def _source_epoch(epoch_iterator):
    """One epoch of a generator / PyDataset, each batch converted like arrays are."""
    batches = epoch_iterator.epoch()
    try:
        for x, y, sample_weight in batches:
            yield _as_arrays(x), _as_arrays(y), _as_arrays(sample_weight)
    finally:
        batches.close()  # the source's on_epoch_end runs now, even when a loop stops early


def _report_last_step(callback_list, hook, step, reported, logs):
    """A progress bar of unknown total learns the epoch's length from its last batch; make
    sure it sees that batch even when batch logs were skipped (redraw throttle, verbose=2)."""
    if step is not None and step != reported:
        getattr(callback_list, hook)(step, logs())


def fit(model, x, y, batch_size=None, epochs=1, verbose="auto", callbacks=None, validation_split=0.0,
        validation_data=None, shuffle=True, class_weight=None, sample_weight=None, initial_epoch=0,
        steps_per_epoch=None, validation_steps=None, validation_batch_size=None, validation_freq=1):
    model._assert_compiled()
    _refuse_iterator(x)
    if is_batch_source(x):
        # batch_size is ignored here, as in Keras: the source makes the batches.
        if validation_split and validation_data is None:
            raise ValueError(f"`validation_split` is only supported for numpy arrays; x is a "
                             f"{type(x).__name__}. Pass `validation_data` instead.")
        train_iterator = EpochIterator(get_data_adapter(x, y, sample_weight, class_weight, shuffle),
                                       steps_per_epoch)
        steps = train_iterator.num_batches

        def epoch_batches():
            return _source_epoch(train_iterator)
    else:
        x, y, sample_weight = _unpack_xy(x, y, sample_weight)
        x, y, sample_weight = _as_arrays(x), _as_arrays(y), _as_arrays(sample_weight)
        batch_size = 32 if batch_size is None else int(batch_size)
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        num_samples = _num_samples([x, y, sample_weight])
        if validation_split and validation_data is None:
            if not 0 < validation_split < 1:
                raise ValueError(f"validation_split must be in (0, 1), got {validation_split}")
            split = int(num_samples * (1.0 - validation_split))
            validation_data = (_take(x, slice(split, None)), _take(y, slice(split, None)),
                               _take(sample_weight, slice(split, None)))
            x, y, sample_weight = _take(x, slice(0, split)), _take(y, slice(0, split)), _take(
                sample_weight, slice(0, split))
            num_samples = split
        if class_weight is not None:
            weights = _class_weights(y, class_weight)
            sample_weight = weights if sample_weight is None else sample_weight * weights
        steps = math.ceil(num_samples / batch_size)
        if steps_per_epoch is not None:
            steps = min(steps, int(steps_per_epoch))

        def epoch_batches():
            return _array_epoch(x, y, sample_weight, batch_size, shuffle, steps)
    validation_adapter = None
    if validation_data is not None:
        vx, vy, vsw = _unpack_xy(tuple(validation_data), None, None) if isinstance(
            validation_data, (tuple, list)) else (validation_data, None, None)
    verbose = _resolve_verbose(verbose)
    callback_list = _callback_list(model, callbacks, verbose, epochs, steps, add_history=True)
    compiled = model._compiled
    model.stop_training = False
    model._fit_variables = None
    logs = {}
    callback_list.on_train_begin()
    for epoch in range(initial_epoch, epochs):
        compiled.reset()
        model._fit_variables = model.trainable_weights
        object.__setattr__(model, "_fit_has_losses", model._has_losses())
        callback_list.on_epoch_begin(epoch)
        step = reported = None
        batches = epoch_batches()
        for step, (bx, by, bsw) in enumerate(batches):
            callback_list.on_train_batch_begin(step)
            loss, y_pred = model.train_step(bx, by, bsw)
            batch_len = _num_samples(bx)
            compiled.loss_tracker.update(ops.convert_to_numpy(loss), batch_len)
            compiled.update_metrics(by, y_pred, bsw)
            if callback_list.wants_batch_logs and callback_list.batch_logs_due():
                callback_list.on_train_batch_end(step, compiled.results())
                reported = step
            if model.stop_training:
                break
        batches.close()
        if steps is None:
            _report_last_step(callback_list, "on_train_batch_end", step, reported, compiled.results)
        epoch_logs = compiled.results()
        if validation_data is not None and (epoch + 1) % validation_freq == 0:
            validation_iterator = None
            if is_batch_source(vx):
                # One adapter per fit, a fresh pass per validation, as in Keras: a PyDataset is
                # read from its first batch each time, and a generator, once run out, gives
                # only the batches its adapter read ahead.
                if validation_adapter is None:
                    validation_adapter = get_data_adapter(vx, vy, vsw)
                validation_iterator = EpochIterator(validation_adapter, validation_steps)
            val_logs = evaluate(model, vx, vy, batch_size=validation_batch_size or batch_size, verbose=0,
                                sample_weight=vsw, steps=validation_steps, return_dict=True, _internal=True,
                                _epoch_iterator=validation_iterator)
            epoch_logs.update({f"val_{k}": v for k, v in val_logs.items()})
        callback_list.on_epoch_end(epoch, epoch_logs)
        logs = epoch_logs
        if model.stop_training:
            break
    callback_list.on_train_end(logs)
    model._fit_variables = None
    object.__setattr__(model, "_fit_has_losses", None)
    return model.history


def evaluate(model, x, y=None, batch_size=None, verbose="auto", sample_weight=None, steps=None, callbacks=None,
             return_dict=False, _internal=False, _epoch_iterator=None):
    model._assert_compiled()
    _refuse_iterator(x)
    if _epoch_iterator is None and is_batch_source(x):
        _epoch_iterator = EpochIterator(get_data_adapter(x, y, sample_weight), steps)
    if _epoch_iterator is not None:
        total = _epoch_iterator.num_batches
        batches = _source_epoch(_epoch_iterator)
    else:
        x, y, sample_weight = _unpack_xy(x, y, sample_weight)
        x, y, sample_weight = _as_arrays(x), _as_arrays(y), _as_arrays(sample_weight)
        batch_size = 32 if batch_size is None else int(batch_size)
        total = len(_batches(_num_samples([x, y, sample_weight]), batch_size, False, steps))
        batches = _array_epoch(x, y, sample_weight, batch_size, False, steps)
    verbose = _resolve_verbose(verbose)
    compiled = model._compiled
    # Validation inside fit must not clobber the training metrics' running state.
    saved = _snapshot(compiled) if _internal else None
    compiled.reset()
    callback_list = None if _internal else _callback_list(model, callbacks, verbose, 1, total, add_history=False)
    if callback_list:
        callback_list.on_test_begin()
    step = reported = None
    for step, (bx, by, bsw) in enumerate(batches):
        if callback_list:
            callback_list.on_test_batch_begin(step)
        loss, y_pred = model.test_step(bx, by, bsw)
        compiled.loss_tracker.update(ops.convert_to_numpy(loss), _num_samples(bx))
        compiled.update_metrics(by, y_pred, bsw)
        if callback_list and callback_list.wants_batch_logs and callback_list.batch_logs_due():
            callback_list.on_test_batch_end(step, compiled.results())
            reported = step
    if callback_list and total is None:
        _report_last_step(callback_list, "on_test_batch_end", step, reported, compiled.results)
    logs = compiled.results()
    if saved is not None:
        _restore(compiled, saved)
    if callback_list:
        callback_list.on_test_end(logs)
    if return_dict:
        return logs
    values = list(logs.values())
    return values[0] if len(values) == 1 else values


def _snapshot(compiled):
    import copy

    state = {"loss": (compiled.loss_tracker.total, compiled.loss_tracker.count)}
    state["outputs"] = [(t.total, t.count) for t in getattr(compiled, "output_loss_trackers", [])]
    state["metrics"] = [copy.deepcopy([np.array(v.numpy()) for v in getattr(m, "variables", [])])
                        for _, m, _ in getattr(compiled, "metrics", [])]
    return state


def _restore(compiled, state):
    compiled.loss_tracker.total, compiled.loss_tracker.count = state["loss"]
    for tracker, (total, count) in zip(getattr(compiled, "output_loss_trackers", []), state["outputs"]):
        tracker.total, tracker.count = total, count
    for (_, metric, _), values in zip(getattr(compiled, "metrics", []), state["metrics"]):
        for variable, value in zip(getattr(metric, "variables", []), values):
            variable.assign(value)


def predict(model, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
    _refuse_iterator(x)
    verbose = _resolve_verbose(verbose)
    if is_batch_source(x):
        # Batches may be x, (x,), (x, y) or (x, y, sample_weight); only x is used.
        epoch_iterator = EpochIterator(get_data_adapter(x), steps)
        total = epoch_iterator.num_batches
        inputs = (bx for bx, _, _ in _source_epoch(epoch_iterator))
    else:
        x = _as_arrays(x)
        batch_size = 32 if batch_size is None else int(batch_size)
        num_samples = _num_samples(x)
        if num_samples <= batch_size and not callbacks and verbose == 0 and steps is None:
            # One batch and nobody listening: skip the loop machinery (serving latency).
            return predict_on_batch(model, x)
        index_list = _batches(num_samples, batch_size, False, steps)
        total = len(index_list)
        inputs = (_take(x, index) for index in index_list)
    callback_list = _callback_list(model, callbacks, verbose, 1, total, add_history=False)
    callback_list.on_predict_begin()
    outputs = []
    step = reported = None
    for step, bx in enumerate(inputs):
        callback_list.on_predict_batch_begin(step)
        batch_out = model(bx, training=False)
        batch_out = tree.map_structure(lambda v: np.asarray(ops.convert_to_numpy(v)), batch_out)
        outputs.append(batch_out)
        if callback_list.wants_batch_logs:
            callback_list.on_predict_batch_end(step, {"outputs": batch_out})
            reported = step
    if total is None:
        _report_last_step(callback_list, "on_predict_batch_end", step, reported, lambda: {"outputs": None})
    callback_list.on_predict_end()
    if not outputs:
        raise ValueError("predict() received no data.")
    if len(outputs) == 1:
        return outputs[0]
    flat = [tree.flatten(o) for o in outputs]
    merged = [np.concatenate([f[i] for f in flat], axis=0) for i in range(len(flat[0]))]
    return tree.pack_like(outputs[0], merged)


def train_on_batch(model, x, y, sample_weight, class_weight, return_dict):
    model._assert_compiled()
    x, y, sample_weight = _as_arrays(x), _as_arrays(y), _as_arrays(sample_weight)
    if class_weight is not None:
        weights = _class_weights(y, class_weight)
        sample_weight = weights if sample_weight is None else sample_weight * weights
    compiled = model._compiled
    compiled.reset()
    model._fit_variables = model.trainable_weights
    try:
        loss, y_pred = model.train_step(x, y, sample_weight)
    finally:
        model._fit_variables = None
    compiled.loss_tracker.update(ops.convert_to_numpy(loss), _num_samples(x))
    compiled.update_metrics(y, y_pred, sample_weight)
    return _format(compiled.results(), return_dict)


def test_on_batch(model, x, y, sample_weight, return_dict):
    model._assert_compiled()
    x, y, sample_weight = _as_arrays(x), _as_arrays(y), _as_arrays(sample_weight)
    compiled = model._compiled
    compiled.reset()
    loss, y_pred = model.test_step(x, y, sample_weight)
    compiled.loss_tracker.update(ops.convert_to_numpy(loss), _num_samples(x))
    compiled.update_metrics(y, y_pred, sample_weight)
    return _format(compiled.results(), return_dict)


def predict_on_batch(model, x):
    out = model(_as_arrays(x), training=False)
    if isinstance(out, np.ndarray):
        return out
    return tree.map_structure(lambda v: np.asarray(ops.convert_to_numpy(v)), out)


def _format(logs, return_dict):
    if return_dict:
        return logs
    values = list(logs.values())
    return values[0] if len(values) == 1 else values
