"""``model.summary()``: Keras 3's table of layers, output shapes and parameter counts.

Keras draws the table with ``rich`` (without colours when a ``print_fn`` captures it); the
column widths, wrapping and truncation below follow rich's rules, so the text is the same
line for line, nested models (``expand_nested``) and the ``show_trainable`` column included.
Functional models that are not a plain chain (several inputs or outputs, merges, shared
layers) get Keras's fourth column, "Connected to": each inbound ``layer[node][tensor]``.
"""

import math
import re
import shutil

import numpy as np

from amber.layers.graph_ops import GraphOp
from amber.layers.input_layer import InputLayer
from amber.models.functional import Functional, graph_depths

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


def _format_shape(shape):
    # Keras joins the dimensions itself: a 1-D shape prints as "(None)", not "(None,)".
    return "(" + ", ".join(str(dim) for dim in shape) + ")"


def _shape_text(layer):
    if layer._inbound_nodes:
        # As Keras: the shapes of the layer's latest call (a shared layer's last node).
        shapes = [_format_shape(t.shape) for t in layer._inbound_nodes[-1].output_tensors]
        return shapes[0] if len(shapes) == 1 else "[" + ", ".join(shapes) + "]"
    try:
        shape = layer.output_shape
    except (AttributeError, ValueError):
        return "?"
    return str(shape)


def _params_text(layer):
    if isinstance(layer, GraphOp):
        return "0"  # Keras's operations have no build state, only layers can be unbuilt
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


def _column_widths(line_length, positions, columns):
    """Cell widths (text plus one space each side) of ``columns`` columns in a table
    ``line_length`` wide. As in Keras, positions beyond the columns are checked, not drawn."""
    widths, current = [], 0
    for position in positions:
        width = int(position * line_length) - current
        if width < 4:
            raise ValueError("Insufficient console width to print summary.")
        widths.append(width)
        current += width
    widths = [width + 2 for width in widths[:columns]]  # rich adds the padding on top
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


# ---------------------------------------------------------------- graph

def _graph_nodes(model):
    """The nodes of a Functional model that is not a plain chain, else None (no "Connected to").

    Keras's rule: a chain has one node per depth, each reading one tensor, and no layer
    called twice in the model."""
    if not isinstance(model, Functional):
        return None  # Sequential and subclassed models print as a sequence of layers
    node_depth, _ = graph_depths(model._nodes)
    by_depth = {}
    for node in model._nodes:
        by_depth.setdefault(node_depth[id(node)], []).append(node)
    chain = all(len(nodes) == 1 and len(nodes[0].input_tensors) <= 1 for nodes in by_depth.values())
    calls = {}
    for node in model._nodes:
        calls[id(node.layer)] = calls.get(id(node.layer), 0) + 1
    if chain and max(calls.values(), default=0) <= 1:
        return None
    return model._nodes


def _connections_text(layer, graph_node_ids):
    """``source[node][tensor]`` of every tensor the layer reads in this model's graph; nested
    models' own layers are called in another graph and show "-"."""
    sources = []
    for node in layer._inbound_nodes:
        if id(node) not in graph_node_ids:
            continue
        for tensor in node.input_tensors:
            source, node_index, tensor_index = tensor._keras_history
            sources.append(f"{source.name}[{node_index}][{tensor_index}]")
    return ", ".join(sources) or "-"


# ---------------------------------------------------------------- layers

def _layer_rows(layer, expand_nested, show_trainable, graph_node_ids, level=0):
    prefix = _NESTED_INDENT * level + _NESTED_MARK if level else ""
    cells = [f"{prefix}{layer.name} ({type(layer).__name__})", _shape_text(layer), _params_text(layer)]
    if graph_node_ids is not None:
        cells.append(_connections_text(layer, graph_node_ids))
    if show_trainable:
        cells.append(_trainable_text(layer))
    rows = [cells]
    inner = getattr(layer, "layers", None) if expand_nested else None
    for sublayer in inner or []:
        rows.extend(_layer_rows(sublayer, expand_nested, show_trainable, graph_node_ids, level + 1))
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
    graph_nodes = _graph_nodes(model)
    if graph_nodes is None:
        header = ["Layer (type)", "Output Shape", "Param #"]
        aligns = ["left", "left", "right"]
        default_length = 88
        positions = list(positions or [0.45, 0.80, 1.0])
        graph_node_ids = None
    else:
        header = ["Layer (type)", "Output Shape", "Param #", "Connected to"]
        aligns = ["left", "left", "right", "left"]
        default_length = 108
        positions = list(positions or [0.3, 0.56, 0.74, 1.0])
        graph_node_ids = {id(node) for node in graph_nodes}
    if show_trainable:
        default_length += 12
        positions = [p * 0.90 for p in positions] + [1.0]
        header.append("Trainable")
        aligns.append("center")
    line_length = line_length or min(default_length, shutil.get_terminal_size().columns - 4)
    widths = _column_widths(line_length, positions, len(header))

    # A Functional model lists its graph's operations too (``x * 2`` prints as "multiply").
    layers = list(model._operations if isinstance(model, Functional) else model.layers)
    start, stop = _layer_bounds(layers, layer_range)
    rows = []
    for layer in layers[start:stop]:
        rows.extend(_layer_rows(layer, expand_nested, show_trainable, graph_node_ids))

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
