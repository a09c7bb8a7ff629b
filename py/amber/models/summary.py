"""``model.summary()``: Keras 3's table of layers, output shapes and parameter counts."""

import numpy as np

from amber.layers.input_layer import InputLayer

_WIDTHS = (33, 24, 15)


def readable_memory_size(size):
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if size / 1024 < 1:
            return f"{size:.2f} {unit}"
        size /= 1024
    return f"{size:.2f} EB"


def _count(variables):
    seen, total, nbytes = set(), 0, 0
    for variable in variables:
        if id(variable) in seen:
            continue
        seen.add(id(variable))
        count = int(np.prod(variable.shape))
        total += count
        nbytes += count * np.dtype(variable.dtype).itemsize
    return total, nbytes


def _shape_text(layer):
    try:
        shape = layer.output_shape
    except (AttributeError, ValueError):
        return "?"
    return str(shape)


def _params_text(layer):
    if not layer.built and not isinstance(layer, InputLayer):
        return "0 (unbuilt)"
    return f"{_count(layer.weights)[0]:,}"


def _wrap(text, width):
    """Split a cell over lines at spaces, the way the table wraps 'name (Type)'."""
    lines, current = [], ""
    for word in text.split(" "):
        candidate = word if not current else f"{current} {word}"
        if len(candidate) <= width or not current:
            current = candidate
        else:
            lines.append(current)
            current = word
    lines.append(current)
    return lines


def _row(cells, widths, aligns):
    wrapped = [_wrap(cell, width - 2) for cell, width in zip(cells, widths)]
    height = max(len(w) for w in wrapped)
    out = []
    for i in range(height):
        parts = []
        for lines, width, align in zip(wrapped, widths, aligns):
            text = lines[i] if i < len(lines) else ""
            body = text.rjust(width - 2) if align == "right" else text.ljust(width - 2)
            parts.append(f" {body} ")
        out.append("│" + "│".join(parts) + "│")
    return out


def print_summary(model, line_length=None, positions=None, print_fn=None, show_trainable=False):
    print_fn = print_fn or (lambda text, **_: print(text))
    widths = _WIDTHS
    if line_length is not None and line_length > sum(widths) + 4:
        extra = line_length - (sum(widths) + 4)
        widths = (widths[0] + extra // 2, widths[1] + extra - extra // 2, widths[2])
    layers = list(model.layers)
    lines = [f'Model: "{model.name}"']
    lines.append("┏" + "┳".join("━" * w for w in widths) + "┓")
    header = ["Layer (type)", "Output Shape", "Param #"]
    lines.append("┃" + "┃".join(f" {h.ljust(w - 2) if i < 2 else h.rjust(w - 2)} "
                                  for i, (h, w) in enumerate(zip(header, widths))) + "┃")
    lines.append("┡" + "╇".join("━" * w for w in widths) + "┩")
    for index, layer in enumerate(layers):
        cells = [f"{layer.name} ({type(layer).__name__})", _shape_text(layer), _params_text(layer)]
        lines.extend(_row(cells, widths, ("left", "left", "right")))
        if index != len(layers) - 1:
            lines.append("├" + "┼".join("─" * w for w in widths) + "┤")
    lines.append("└" + "┴".join("─" * w for w in widths) + "┘")
    trainable, trainable_bytes = _count(model.trainable_weights)
    non_trainable, non_trainable_bytes = _count(model.non_trainable_weights)
    optimizer_count, optimizer_bytes = 0, 0
    optimizer = getattr(model, "optimizer", None)
    if getattr(model, "compiled", False) and optimizer is not None and getattr(optimizer, "built", False):
        optimizer_count, optimizer_bytes = _count(getattr(optimizer, "variables", []))
    total = trainable + non_trainable + optimizer_count
    total_bytes = trainable_bytes + non_trainable_bytes + optimizer_bytes
    lines.append(f" Total params: {total:,} ({readable_memory_size(total_bytes)})")
    lines.append(f" Trainable params: {trainable:,} ({readable_memory_size(trainable_bytes)})")
    lines.append(f" Non-trainable params: {non_trainable:,} ({readable_memory_size(non_trainable_bytes)})")
    if optimizer_count:
        lines.append(f" Optimizer params: {optimizer_count:,} ({readable_memory_size(optimizer_bytes)})")
    for line in lines:
        print_fn(line)
