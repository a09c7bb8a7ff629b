"""What ``compile`` set up: per-output losses (with weights) and metrics, resolved on the
first batch once the shapes of targets and predictions are known, and the log names Keras 3
gives them (``loss``, ``<output>_loss``, ``<metric>`` or ``<output>_<metric>``)."""

import numpy as np

from amber import ops
from amber.layers import tree


def _is_binary_or_sparse(y_true, y_pred):
    true_shape, pred_shape = np.shape(y_true), np.shape(y_pred)
    pred_last = pred_shape[-1] if pred_shape else 1
    true_last = true_shape[-1] if true_shape else 1
    is_binary = pred_last == 1
    is_sparse = len(true_shape) < len(pred_shape) or (true_last == 1 and pred_last > 1)
    return is_binary, is_sparse


def _resolve_loss(identifier, y_true, y_pred):
    from amber import losses

    if identifier is None:
        return None
    if isinstance(identifier, str) and identifier.lower() in ("crossentropy", "ce"):
        is_binary, is_sparse = _is_binary_or_sparse(y_true, y_pred)
        identifier = ("binary_crossentropy" if is_binary else
                      "sparse_categorical_crossentropy" if is_sparse else "categorical_crossentropy")
    loss = losses.get(identifier)
    if isinstance(loss, getattr(losses, "Loss", ())):
        return loss
    wrapper = getattr(losses, "LossFunctionWrapper", None)
    if wrapper is not None:
        return wrapper(loss)
    return _MeanOverBatch(loss)


class _MeanOverBatch:
    """Keras's default reduction for a plain loss function: weighted sum / batch size."""

    def __init__(self, fn):
        self.fn = fn
        self.name = getattr(fn, "__name__", "loss")

    def __call__(self, y_true, y_pred, sample_weight=None):
        values = self.fn(y_true, y_pred)
        if sample_weight is not None:
            weight = np.asarray(sample_weight, dtype="float32")
            while weight.ndim < len(np.shape(values)):
                weight = weight[..., None]
            values = ops.multiply(values, weight)
        return ops.mean(values)


def _resolve_metric(identifier, y_true, y_pred):
    from amber import metrics

    if isinstance(identifier, str) and identifier.lower() in ("accuracy", "acc"):
        is_binary, is_sparse = _is_binary_or_sparse(y_true, y_pred)
        cls = (metrics.BinaryAccuracy if is_binary else
               metrics.SparseCategoricalAccuracy if is_sparse else metrics.CategoricalAccuracy)
        metric = cls(name=identifier)
    else:
        metric = metrics.get(identifier)
        if not isinstance(metric, metrics.Metric):
            metric = metrics.MeanMetricWrapper(metric, name=getattr(metric, "__name__", "metric"))
    if isinstance(identifier, str):
        try:
            metric.name = identifier
        except AttributeError:
            pass
    return metric


class _Mean:
    """A weighted running mean kept in Python floats (the loss trackers)."""

    __slots__ = ("name", "total", "count")

    def __init__(self, name):
        self.name = name
        self.total = 0.0
        self.count = 0.0

    def update(self, value, weight):
        self.total += float(value) * weight
        self.count += weight

    def result(self):
        return self.total / self.count if self.count else 0.0

    def reset(self):
        self.total = 0.0
        self.count = 0.0


def _per_output(spec, names, what):
    """Spread a compile argument (single, list or dict) over the model's outputs."""
    count = len(names)
    if isinstance(spec, dict):
        unknown = [k for k in spec if k not in names]
        if unknown:
            raise ValueError(f"In compile(), the {what} dict has keys {unknown} that are not output names of "
                             f"the model; output names are {names}")
        return [spec.get(n) for n in names]
    if isinstance(spec, (list, tuple)) and what in ("loss", "loss_weights"):
        if count == 1 and len(spec) == 1:
            return [spec[0]]
        if len(spec) != count:
            raise ValueError(f"In compile(), the {what} list has {len(spec)} entries but the model has "
                             f"{count} outputs")
        return list(spec)
    if isinstance(spec, (list, tuple)) and what.endswith("metrics"):
        if count > 1 and len(spec) == count and all(isinstance(s, (list, tuple)) or s is None for s in spec):
            return list(spec)
        return [list(spec)] * count if count == 1 else [list(spec) for _ in range(count)]
    if what == "loss_weights":
        return [spec] * count
    return [spec] * count


class CompiledState:
    def __init__(self, model, loss, loss_weights, metrics, weighted_metrics):
        self.model = model
        self.loss_spec = loss
        self.loss_weights_spec = loss_weights
        self.metrics_spec = metrics
        self.weighted_metrics_spec = weighted_metrics
        self.built = False
        self.loss_tracker = _Mean("loss")

    def _output_names(self, y_pred):
        names = getattr(self.model, "output_names", None)
        flat = tree.flatten(y_pred)
        if isinstance(y_pred, dict):
            return list(y_pred.keys())
        if names and len(names) == len(flat):
            return list(names)
        return [f"output_{i}" if len(flat) > 1 else "output" for i in range(len(flat))]

    def _flat_targets(self, y, names, count):
        if isinstance(y, dict):
            missing = [n for n in names if n not in y]
            if missing:
                raise ValueError(f"Target dict is missing outputs {missing}; it has keys {list(y)}")
            return [y[n] for n in names]
        if isinstance(y, (list, tuple)):
            flat = list(y)
            if len(flat) != count:
                raise ValueError(f"Got {len(flat)} targets for a model with {count} outputs")
            return flat
        if count != 1:
            raise ValueError(f"Got a single target array for a model with {count} outputs")
        return [y]

    def build(self, y, y_pred):
        flat_pred = tree.flatten(y_pred)
        self.names = self._output_names(y_pred)
        flat_true = self._flat_targets(y, self.names, len(flat_pred))
        loss_specs = _per_output(self.loss_spec, self.names, "loss")
        if self.loss_weights_spec is None:
            weights = [None] * len(flat_pred)
        else:
            weights = _per_output(self.loss_weights_spec, self.names, "loss_weights")
        self.losses = []
        for index, (spec, weight) in enumerate(zip(loss_specs, weights)):
            fn = _resolve_loss(spec, flat_true[index], flat_pred[index])
            if fn is not None:
                self.losses.append((index, fn, weight))
        multi = len(flat_pred) > 1
        self.output_loss_trackers = [_Mean(f"{self.names[i]}_loss") for i, _, _ in self.losses] \
            if len(self.losses) > 1 else []
        self.metrics = []  # (output index, metric, weighted?)
        for spec_value, weighted in ((self.metrics_spec, False), (self.weighted_metrics_spec, True)):
            if not spec_value:
                continue
            per_output = _per_output(spec_value, self.names, "weighted_metrics" if weighted else "metrics")
            for index, specs in enumerate(per_output):
                if specs is None:
                    continue
                for spec in (specs if isinstance(specs, (list, tuple)) else [specs]):
                    metric = _resolve_metric(spec, flat_true[index], flat_pred[index])
                    if multi:
                        try:
                            metric.name = f"{self.names[index]}_{metric.name}"
                        except AttributeError:
                            pass
                    self.metrics.append((index, metric, weighted))
        self.built = True

    def compute_loss(self, y, y_pred, sample_weight, extra_losses):
        if not self.built:
            self.build(y, y_pred)
        flat_pred = tree.flatten(y_pred)
        flat_true = self._flat_targets(y, self.names, len(flat_pred))
        total = None
        track = bool(self.output_loss_trackers)
        for position, (index, fn, weight) in enumerate(self.losses):
            sw = sample_weight[index] if isinstance(sample_weight, (list, tuple)) else (
                sample_weight.get(self.names[index]) if isinstance(sample_weight, dict) else sample_weight)
            value = fn(flat_true[index], flat_pred[index], sw)
            if track:
                self.output_loss_trackers[position].update(ops.convert_to_numpy(value),
                                                           np.shape(flat_pred[index])[0])
            if weight is not None:
                value = ops.multiply(value, float(weight))
            total = value if total is None else ops.add(total, value)
        for extra in extra_losses:
            total = extra if total is None else ops.add(total, extra)
        if total is None:
            raise ValueError("No loss to compute. Provide a `loss` argument in `compile()`.")
        return total

    def update_metrics(self, y, y_pred, sample_weight):
        if not self.metrics:
            return
        flat_pred = [np.asarray(ops.convert_to_numpy(p)) for p in tree.flatten(y_pred)]
        flat_true = self._flat_targets(y, self.names, len(flat_pred))
        for index, metric, weighted in self.metrics:
            sw = None
            if weighted:
                sw = sample_weight[index] if isinstance(sample_weight, (list, tuple)) else sample_weight
            metric.update_state(flat_true[index], flat_pred[index], sample_weight=sw)

    def reset(self):
        self.loss_tracker.reset()
        for tracker in getattr(self, "output_loss_trackers", []):
            tracker.reset()
        for _, metric, _ in getattr(self, "metrics", []):
            metric.reset_state()

    def results(self):
        logs = {"loss": self.loss_tracker.result()}
        for _, metric, _ in getattr(self, "metrics", []):
            value = metric.result()
            logs[metric.name] = float(np.asarray(ops.convert_to_numpy(value)))
        for tracker in getattr(self, "output_loss_trackers", []):
            logs[tracker.name] = tracker.result()
        return logs

    def log_names(self):
        return list(self.results().keys())

    def metric_objects(self):
        return [m for _, m, _ in getattr(self, "metrics", [])]
