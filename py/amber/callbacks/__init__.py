"""amber.callbacks: mirrors keras.callbacks.

Hooks that ``fit``/``evaluate``/``predict`` call around epochs and batches, with Keras 3's
names, arguments and defaults.
"""

import csv
import math
import os
import sys
import time
import warnings

import numpy as np


def _float(value):
    if value is None:
        return None
    if hasattr(value, "numpy"):
        value = value.numpy()
    return float(np.asarray(value))


def _get_lr(optimizer):
    lr = optimizer.learning_rate
    if callable(lr) and not hasattr(lr, "numpy"):
        lr = lr(getattr(optimizer, "iterations", 0))
    return _float(lr)


def _set_lr(optimizer, value):
    optimizer.learning_rate = float(value)


class Callback:
    """Base class: every hook is a no-op; ``self.model`` and ``self.params`` are set by fit."""

    def __init__(self):
        self.params = None
        self._model = None

    def set_params(self, params):
        self.params = params

    def set_model(self, model):
        self._model = model

    @property
    def model(self):
        return self._model

    def on_batch_begin(self, batch, logs=None):
        pass

    def on_batch_end(self, batch, logs=None):
        pass

    def on_epoch_begin(self, epoch, logs=None):
        pass

    def on_epoch_end(self, epoch, logs=None):
        pass

    def on_train_batch_begin(self, batch, logs=None):
        self.on_batch_begin(batch, logs=logs)

    def on_train_batch_end(self, batch, logs=None):
        self.on_batch_end(batch, logs=logs)

    def on_test_batch_begin(self, batch, logs=None):
        pass

    def on_test_batch_end(self, batch, logs=None):
        pass

    def on_predict_batch_begin(self, batch, logs=None):
        pass

    def on_predict_batch_end(self, batch, logs=None):
        pass

    def on_train_begin(self, logs=None):
        pass

    def on_train_end(self, logs=None):
        pass

    def on_test_begin(self, logs=None):
        pass

    def on_test_end(self, logs=None):
        pass

    def on_predict_begin(self, logs=None):
        pass

    def on_predict_end(self, logs=None):
        pass


_BATCH_HOOKS = ("on_batch_begin", "on_batch_end", "on_train_batch_begin", "on_train_batch_end",
                "on_test_batch_begin", "on_test_batch_end", "on_predict_batch_begin", "on_predict_batch_end")


def _overrides_batch_hooks(callback):
    cls = type(callback)
    if isinstance(callback, LambdaCallback):
        return callback._has_batch_hooks
    return any(getattr(cls, hook) is not getattr(Callback, hook) for hook in _BATCH_HOOKS)


class CallbackList:
    """Calls every callback's hook in order. Adds History (fit) and the progress bar."""

    def __init__(self, callbacks=None, add_history=False, add_progbar=False, model=None, **params):
        self.callbacks = list(callbacks or [])
        if add_progbar and not any(isinstance(c, ProgbarLogger) for c in self.callbacks):
            self.callbacks.append(ProgbarLogger())
        self._history = None
        if add_history:
            self._history = History()
            self.callbacks.append(self._history)
        self.params = dict(params)
        for callback in self.callbacks:
            callback.set_params(self.params)
            if model is not None:
                callback.set_model(model)
        if model is not None and self._history is not None:
            model.history = self._history
        # Building batch logs costs a little; only do it when someone listens. A progress
        # bar alone redraws at most every 0.1 s, so it only needs logs that often.
        self._progbars = [c for c in self.callbacks if isinstance(c, ProgbarLogger)]
        self._user_batch_hooks = any(_overrides_batch_hooks(c) for c in self.callbacks
                                     if not isinstance(c, ProgbarLogger))
        self.wants_batch_logs = self._user_batch_hooks or any(c._verbose() == 1 for c in self._progbars)

    def batch_logs_due(self):
        """True when some callback will use this batch's logs."""
        if self._user_batch_hooks:
            return True
        now = time.perf_counter()
        return any(c._verbose() == 1 and now - c._last_draw >= ProgbarLogger.REDRAW_SECONDS
                   for c in self._progbars)

    def append(self, callback):
        self.callbacks.append(callback)

    def _call(self, hook, *args):
        for callback in self.callbacks:
            getattr(callback, hook)(*args)

    def on_train_begin(self, logs=None):
        self._call("on_train_begin", logs)

    def on_train_end(self, logs=None):
        self._call("on_train_end", logs)

    def on_epoch_begin(self, epoch, logs=None):
        self._call("on_epoch_begin", epoch, logs)

    def on_epoch_end(self, epoch, logs=None):
        self._call("on_epoch_end", epoch, logs)

    def on_train_batch_begin(self, batch, logs=None):
        if self.wants_batch_logs:
            self._call("on_train_batch_begin", batch, logs)

    def on_train_batch_end(self, batch, logs=None):
        self._call("on_train_batch_end", batch, logs)

    def on_test_begin(self, logs=None):
        self._call("on_test_begin", logs)

    def on_test_end(self, logs=None):
        self._call("on_test_end", logs)

    def on_test_batch_begin(self, batch, logs=None):
        if self.wants_batch_logs:
            self._call("on_test_batch_begin", batch, logs)

    def on_test_batch_end(self, batch, logs=None):
        self._call("on_test_batch_end", batch, logs)

    def on_predict_begin(self, logs=None):
        self._call("on_predict_begin", logs)

    def on_predict_end(self, logs=None):
        self._call("on_predict_end", logs)

    def on_predict_batch_begin(self, batch, logs=None):
        if self.wants_batch_logs:
            self._call("on_predict_batch_begin", batch, logs)

    def on_predict_batch_end(self, batch, logs=None):
        self._call("on_predict_batch_end", batch, logs)


class History(Callback):
    """Records each epoch's logs: ``history.history["loss"]`` is one value per epoch."""

    def __init__(self):
        super().__init__()
        self.history = {}
        self.epoch = []

    def on_train_begin(self, logs=None):
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)


def _format_logs(logs):
    parts = []
    for key, value in (logs or {}).items():
        if isinstance(value, (float, int, np.floating, np.integer)):
            parts.append(f"{key}: {float(value):.4f}")
    return " - ".join(parts)


class ProgbarLogger(Callback):
    """verbose=1: a progress bar per epoch; verbose=2: one line per epoch."""

    REDRAW_SECONDS = 0.1

    def __init__(self, count_mode=None):
        super().__init__()
        self._mode = "train"
        self._last_draw = 0.0
        self._start = time.perf_counter()
        # A generator's length is unknown (params["steps"] is None) until its first epoch
        # ends; the bar shows "n/Unknown" until then and that epoch's length afterwards.
        self._seen = 0
        self._learned_total = None

    def _verbose(self):
        return (self.params or {}).get("verbose", 1)

    def _total(self):
        return (self.params or {}).get("steps") or self._learned_total

    def _final_total(self):
        if self._total() is None:
            self._learned_total = self._seen
        return self._total() or 0

    def on_train_begin(self, logs=None):
        self._mode = "train"
        self._learned_total = None

    def on_test_begin(self, logs=None):
        self._mode = "test"
        self._start = time.perf_counter()
        self._last_draw = 0.0
        self._seen, self._learned_total = 0, None

    def on_predict_begin(self, logs=None):
        self._mode = "predict"
        self._start = time.perf_counter()
        self._last_draw = 0.0
        self._seen, self._learned_total = 0, None

    def on_epoch_begin(self, epoch, logs=None):
        epochs = (self.params or {}).get("epochs", 1)
        if self._verbose() and epochs:
            print(f"Epoch {epoch + 1}/{epochs}")
        self._start = time.perf_counter()
        self._last_draw = 0.0
        self._seen = 0

    def _draw(self, step, logs, final):
        total = self._total()
        now = time.perf_counter()
        if not final and now - self._last_draw < self.REDRAW_SECONDS:
            return
        self._last_draw = now
        elapsed = now - self._start
        per_step = elapsed / max(step, 1)
        width = 20
        filled = int(width * step / total) if total else width
        bar = "━" * filled + ("━" if False else "─") * (width - filled)
        timing = f"{int(elapsed)}s {per_step * 1e3:.0f}ms/step"
        text = _format_logs(logs)
        progress = f"{step}/{total} {bar}" if total is not None else f"{step}/Unknown"
        line = f"{progress} {timing}" + (f" - {text}" if text else "")
        sys.stdout.write(("\r" + line) if not final else ("\r" + line + "\n"))
        sys.stdout.flush()

    def on_train_batch_end(self, batch, logs=None):
        self._seen = batch + 1
        if self._verbose() == 1:
            self._draw(batch + 1, logs, False)

    def on_test_batch_end(self, batch, logs=None):
        self._seen = batch + 1
        if self._verbose() == 1:
            self._draw(batch + 1, logs, False)

    def on_predict_batch_end(self, batch, logs=None):
        self._seen = batch + 1
        if self._verbose() == 1:
            self._draw(batch + 1, None, False)

    def on_epoch_end(self, epoch, logs=None):
        verbose = self._verbose()
        steps = self._final_total()
        if verbose == 1:
            self._draw(steps, logs, True)
        elif verbose == 2:
            elapsed = time.perf_counter() - self._start
            text = _format_logs(logs)
            print(f"{steps}/{steps} - {int(elapsed)}s - {elapsed / max(steps, 1) * 1e3:.0f}ms/step"
                  + (f" - {text}" if text else ""))

    def on_test_end(self, logs=None):
        if self._verbose() == 1:
            self._draw(self._final_total(), logs, True)

    def on_predict_end(self, logs=None):
        if self._verbose() == 1:
            self._draw(self._final_total(), None, True)


class _Monitor(Callback):
    """Shared logic of callbacks that watch one logged quantity."""

    def __init__(self, monitor, mode, min_delta):
        super().__init__()
        self.monitor = monitor
        if mode not in ("auto", "min", "max"):
            warnings.warn(f"{type(self).__name__} mode {mode} is unknown, fallback to auto mode.")
            mode = "auto"
        self.mode = mode
        self.min_delta = abs(min_delta)
        if mode == "min" or (mode == "auto" and not _looks_like_accuracy(monitor)):
            self._better = lambda current, best: current < best - self.min_delta
            self.best = math.inf
        else:
            self._better = lambda current, best: current > best + self.min_delta
            self.best = -math.inf
        self._initial_best = self.best

    def _current(self, logs):
        value = (logs or {}).get(self.monitor)
        if value is None:
            warnings.warn(f"{type(self).__name__}: the monitored quantity '{self.monitor}' is not available. "
                          f"Available metrics are: {','.join(list((logs or {}).keys()))}")
            return None
        return float(value)


def _looks_like_accuracy(monitor):
    name = monitor.removeprefix("val_")
    return name in ("acc", "accuracy", "auc") or name.endswith("accuracy") or name.endswith("auc")


class EarlyStopping(_Monitor):
    def __init__(self, monitor="val_loss", min_delta=0, patience=0, verbose=0, mode="auto", baseline=None,
                 restore_best_weights=False, start_from_epoch=0):
        super().__init__(monitor, mode, min_delta)
        self.patience = patience
        self.verbose = verbose
        self.baseline = baseline
        self.restore_best_weights = restore_best_weights
        self.start_from_epoch = start_from_epoch
        self.wait = 0
        self.stopped_epoch = 0
        self.best_weights = None
        self.best_epoch = 0

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.stopped_epoch = 0
        self.best = self._initial_best if self.baseline is None else float(self.baseline)
        self.best_weights = None
        self.best_epoch = 0

    def on_epoch_end(self, epoch, logs=None):
        current = self._current(logs)
        if current is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()
        self.wait += 1
        if self._better(current, self.best):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._better(current, float(self.baseline)):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None and self.stopped_epoch > 0:
            if self.verbose > 0:
                print(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)


class ModelCheckpoint(_Monitor):
    """Saves the model (``.keras``) or its weights (``.weights.h5``) after epochs."""

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False, save_weights_only=False,
                 mode="auto", save_freq="epoch", initial_value_threshold=None):
        super().__init__(monitor, mode, 0)
        self.filepath = os.fspath(filepath)
        self.verbose = verbose
        self.save_best_only = save_best_only
        self.save_weights_only = save_weights_only
        self.save_freq = save_freq
        if initial_value_threshold is not None:
            self.best = float(initial_value_threshold)
        if save_weights_only and not self.filepath.endswith(".weights.h5"):
            raise ValueError("When using `save_weights_only=True` in `ModelCheckpoint`, the filepath provided "
                             f"must end in `.weights.h5` (Keras weights format). Received: filepath={self.filepath}")
        if not save_weights_only and not self.filepath.endswith(".keras"):
            raise ValueError("The filepath provided must end in `.keras` (Keras model format). Received: "
                             f"filepath={self.filepath}")
        self._batches_seen = 0

    def _path(self, epoch, logs):
        try:
            return self.filepath.format(epoch=epoch + 1, **(logs or {}))
        except (KeyError, IndexError) as error:
            raise KeyError(f"Failed to format this callback filepath: \"{self.filepath}\". Reason: {error}") \
                from error

    def _save(self, epoch, logs):
        path = self._path(epoch, logs)
        if self.save_best_only:
            current = self._current(logs)
            if current is None:
                return
            if not self._better(current, self.best):
                if self.verbose > 0:
                    print(f"\nEpoch {epoch + 1}: {self.monitor} did not improve from {self.best:.5f}")
                return
            if self.verbose > 0:
                print(f"\nEpoch {epoch + 1}: {self.monitor} improved from {self.best:.5f} to {current:.5f}, "
                      f"saving model to {path}")
            self.best = current
        elif self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: saving model to {path}")
        folder = os.path.dirname(path)
        if folder:
            os.makedirs(folder, exist_ok=True)
        if self.save_weights_only:
            self.model.save_weights(path, overwrite=True)
        else:
            self.model.save(path, overwrite=True)

    def on_train_batch_end(self, batch, logs=None):
        if isinstance(self.save_freq, int):
            self._batches_seen += 1
            if self._batches_seen % self.save_freq == 0:
                self._save(self._epoch, logs)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self._save(epoch, logs)


class LearningRateScheduler(Callback):
    def __init__(self, schedule, verbose=0):
        super().__init__()
        self.schedule = schedule
        self.verbose = verbose

    def on_epoch_begin(self, epoch, logs=None):
        optimizer = self.model.optimizer
        if not hasattr(optimizer, "learning_rate"):
            raise ValueError('Optimizer must have a "learning_rate" attribute.')
        try:
            lr = self.schedule(epoch, _get_lr(optimizer))
        except TypeError:
            lr = self.schedule(epoch)
        lr = _float(lr)
        if not isinstance(lr, float) or math.isnan(lr):
            raise ValueError(f'The output of the "schedule" function should be a float. Got: {lr}')
        _set_lr(optimizer, lr)
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {lr}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = _get_lr(self.model.optimizer)


class ReduceLROnPlateau(_Monitor):
    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto", min_delta=1e-4,
                 cooldown=0, min_lr=0.0, **kwargs):
        if factor >= 1.0:
            raise ValueError(f"ReduceLROnPlateau does not support a factor >= 1.0. Received factor={factor}")
        super().__init__(monitor, mode, min_delta)
        self.factor = factor
        self.patience = patience
        self.verbose = verbose
        self.cooldown = cooldown
        self.min_lr = min_lr
        self.wait = 0
        self.cooldown_counter = 0

    def on_train_begin(self, logs=None):
        self.best = self._initial_best
        self.wait = 0
        self.cooldown_counter = 0

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        logs["learning_rate"] = _get_lr(self.model.optimizer)
        current = self._current(logs)
        if current is None:
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self._better(current, self.best):
            self.best = current
            self.wait = 0
        elif self.cooldown_counter <= 0:
            self.wait += 1
            if self.wait >= self.patience:
                old = _get_lr(self.model.optimizer)
                if old > np.float32(self.min_lr):
                    new = max(old * self.factor, self.min_lr)
                    _set_lr(self.model.optimizer, new)
                    if self.verbose > 0:
                        print(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new}.")
                    self.cooldown_counter = self.cooldown
                    self.wait = 0


class CSVLogger(Callback):
    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        self.filename = os.fspath(filename)
        self.sep = separator
        self.append = append
        self._file = None
        self._writer = None
        self.keys = None

    def on_train_begin(self, logs=None):
        append_header = True
        if self.append and os.path.exists(self.filename):
            with open(self.filename) as existing:
                append_header = not bool(existing.readline())
        self._file = open(self.filename, "a" if self.append else "w", newline="")
        self._append_header = append_header
        self._writer = None
        self.keys = None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.keys is None:
            self.keys = sorted(logs.keys())
        if self._writer is None:
            self._writer = csv.DictWriter(self._file, fieldnames=["epoch"] + self.keys, delimiter=self.sep)
            if self._append_header:
                self._writer.writeheader()
        row = {"epoch": epoch}
        row.update({key: logs.get(key, "NA") for key in self.keys})
        self._writer.writerow(row)
        self._file.flush()

    def on_train_end(self, logs=None):
        if self._file is not None:
            self._file.close()
            self._file = None
        self._writer = None


class TerminateOnNaN(Callback):
    def on_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and (math.isnan(loss) or math.isinf(loss)):
            print(f"Batch {batch}: Invalid loss, terminating training")
            self.model.stop_training = True


class LambdaCallback(Callback):
    def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_train_begin=None, on_train_end=None,
                 on_train_batch_begin=None, on_train_batch_end=None, **kwargs):
        super().__init__()
        hooks = dict(kwargs)
        hooks.update({"on_epoch_begin": on_epoch_begin, "on_epoch_end": on_epoch_end,
                      "on_train_begin": on_train_begin, "on_train_end": on_train_end,
                      "on_train_batch_begin": on_train_batch_begin, "on_train_batch_end": on_train_batch_end})
        self._has_batch_hooks = False
        for name, fn in hooks.items():
            if fn is None:
                continue
            if not hasattr(Callback, name):
                raise ValueError(f"LambdaCallback got an unknown hook {name!r}")
            setattr(self, name, fn)
            if name in _BATCH_HOOKS:
                self._has_batch_hooks = True


__all__ = ["Callback", "CallbackList", "CSVLogger", "EarlyStopping", "History", "LambdaCallback",
           "LearningRateScheduler", "ModelCheckpoint", "ProgbarLogger", "ReduceLROnPlateau", "TerminateOnNaN"]
