"""``model.summary()``: Keras 3's table of layers, output shapes and parameter counts.

Keras draws the table with ``rich`` (without colours when a ``print_fn`` captures it); the
column widths, wrapping and truncation below follow rich's rules, so the text is the same
line for line, nested models (``expand_nested``) and the ``show_trainable`` column included.
"""

import math
import re
import shutil

import numpy as np

from amber.layers.input_layer import InputLayer

_NESTED_INDENT = "   "
_NESTED_MARK = "└ "


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


def _trainable_text(layer):
    if not getattr(layer, "weights", None):
        return "-"
    return "Y" if layer.trainable else "N"


# ---------------------------------------------------------------- column widths (rich's rules)

def _reduce(excess, widths):
    """Take ``excess`` cells off the columns as evenly as possible, first columns first."""
    out, remaining, columns_left = [], excess, len(widths)
    for width in widths:
        cut = min(width, round(remaining / columns_left))
        out.append(width - cut)
        remaining -= cut
        columns_left -= 1
    return out


def _spread(extra, widths):
    """Hand ``extra`` cells to the columns in proportion to their widths (rounding up)."""
    out, remaining, total = [], extra, sum(widths)
    for width in widths:
        share = math.ceil(width * remaining / total) if total > 0 else remaining
        out.append(width + share)
        remaining -= share
        total -= width
    return out


def _column_widths(line_length, positions):
    """Cell widths (text plus one space each side) of a table ``line_length`` wide."""
    widths, current = [], 0
    for position in positions:
        width = int(position * line_length) - current
        if width < 4:
            raise ValueError("Insufficient console width to print summary.")
        widths.append(width)
        current += width
    widths = [width + 2 for width in widths]  # rich adds the padding on top
    room = line_length - (len(widths) + 1)  # minus the vertical borders
    if sum(widths) > room:
        widths = _reduce(sum(widths) - room, widths)
    elif sum(widths) < room:
        widths = _spread(room - sum(widths), widths)
    return widths


# ---------------------------------------------------------------- cells

def _words(text):
    """Words as rich splits them: leading spaces stay with the first word, trailing spaces
    with the word they follow."""
    return re.findall(r"\s*\S+\s*", text)


def _wrap(text, width):
    """Break at spaces; a word wider than the cell gets a line of its own (cut later)."""
    lines, current = [], ""
    for word in _words(text):
        if len(current) + len(word.rstrip()) <= width or not current:
            current += word
        else:
            lines.append(current)
            current = word
    lines.append(current)
    return lines


def _fit(line, width, align):
    if align != "left":
        line = line.rstrip()
    if len(line) > width:
        line = line.rstrip()
        if len(line) > width:
            line = line[:width - 1] + "…"
    if align == "right":
        return line.rjust(width)
    if align == "center":
        left = (width - len(line)) // 2
        return (" " * left + line).ljust(width)
    return line.ljust(width)


def _row(cells, widths, aligns, border="│", header=False):
    wrapped = [_wrap(cell, width - 2) for cell, width in zip(cells, widths)]
    height = max(len(lines) for lines in wrapped)
    if header:  # rich sits header cells on the bottom line, body cells on the top one
        wrapped = [[""] * (height - len(lines)) + lines for lines in wrapped]
    out = []
    for i in range(height):
        parts = [f" {_fit(lines[i] if i < len(lines) else '', width - 2, align)} "
                 for lines, width, align in zip(wrapped, widths, aligns)]
        out.append(border + border.join(parts) + border)
    return out


# ---------------------------------------------------------------- layers

def _layer_rows(layer, expand_nested, show_trainable, level=0):
    prefix = _NESTED_INDENT * level + _NESTED_MARK if level else ""
    cells = [f"{prefix}{layer.name} ({type(layer).__name__})", _shape_text(layer), _params_text(layer)]
    if show_trainable:
        cells.append(_trainable_text(layer))
    rows = [cells]
    inner = getattr(layer, "layers", None) if expand_nested else None
    for sublayer in inner or []:
        rows.extend(_layer_rows(sublayer, expand_nested, show_trainable, level + 1))
    return rows


def _layer_bounds(layers, layer_range):
    """[first, last + 1) of the layers whose names match ``layer_range``'s two patterns."""
    if layer_range is None:
        return 0, len(layers)
    if len(layer_range) != 2:
        raise ValueError(f"layer_range must be a list or tuple of two layer names, got {layer_range!r} "
                         f"of length {len(layer_range)}.")
    if not all(isinstance(name, str) for name in layer_range):
        raise ValueError(f"layer_range must hold two strings (layer names or patterns), got {layer_range!r}.")
    first = [i for i, layer in enumerate(layers) if re.match(layer_range[0], layer.name)]
    last = [i for i, layer in enumerate(layers) if re.match(layer_range[1], layer.name)]
    if not first or not last:
        raise ValueError(f"layer_range {layer_range!r} matches no layer of the model; its layers are "
                         f"{[layer.name for layer in layers]}.")
    if min(first) > max(last):
        return min(last), max(first) + 1
    return min(first), max(last) + 1


def print_summary(model, line_length=None, positions=None, print_fn=None, expand_nested=False,
                  show_trainable=False, layer_range=None):
    print_fn = print_fn or (lambda text, **_: print(text))
    header = ["Layer (type)", "Output Shape", "Param #"]
    aligns = ["left", "left", "right"]
    default_length = 88
    positions = list(positions or [0.45, 0.80, 1.0])
    if show_trainable:
        default_length += 12
        positions = [p * 0.90 for p in positions] + [1.0]
        header.append("Trainable")
        aligns.append("center")
    line_length = line_length or min(default_length, shutil.get_terminal_size().columns - 4)
    widths = _column_widths(line_length, positions)

    layers = list(model.layers)
    start, stop = _layer_bounds(layers, layer_range)
    rows = []
    for layer in layers[start:stop]:
        rows.extend(_layer_rows(layer, expand_nested, show_trainable))

    lines = [f'Model: "{model.name}"']
    lines.append("┏" + "┳".join("━" * w for w in widths) + "┓")
    lines.extend(_row(header, widths, aligns, border="┃", header=True))
    lines.append("┡" + "╇".join("━" * w for w in widths) + "┩")
    for index, cells in enumerate(rows):
        lines.extend(_row(cells, widths, aligns))
        if index != len(rows) - 1:
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
