"""Keras's mask plumbing around one layer call: which call arguments receive the masks their
input tensors carry, and which mask the call's outputs inherit.

Two callers share it: a symbolic call while a model is built (masks ride on the KerasTensors,
as ``_keras_mask``) and the Functional model's run (masks of the values flowing through the
graph, keyed by the graph tensor they stand for); ``mask_of`` maps a graph tensor to its mask.
"""

from amber.layers import tree
from amber.layers.keras_tensor import KerasTensor


def symbolic_mask(tensor):
    """The mask a symbolic tensor carries (None for none)."""
    return tensor._keras_mask


def fill_mask_arguments(layer, args, kwargs, call_kwargs, mask_of):
    """Fill the layer's mask arguments left unset in ``call_kwargs`` from the masks of the
    tensors the call receives, and return the mask its outputs inherit (None when none).

    One tensor argument (e.g. a merge's list) fills ``mask`` with the matching structure of
    masks; several (e.g. ``query``/``value``) fill each ``<name>_mask`` the signature has. The
    inherited mask is the explicit ``mask`` if any, else the first argument's masks."""

    def masks_of(structure):
        found = tree.map_structure(lambda t: mask_of(t) if isinstance(t, KerasTensor) else None, structure)
        return found if any(m is not None for m in tree.flatten(found)) else None

    names = layer._call_params()[0]
    bound = dict(zip(names, args))
    bound.update(kwargs)
    tensor_args = {name: value for name, value in bound.items()
                   if any(isinstance(leaf, KerasTensor) for leaf in tree.flatten(value))}
    if len(tensor_args) == 1 and "mask" in names and kwargs.get("mask") is None:
        found = masks_of(next(iter(tensor_args.values())))
        if found is not None:
            call_kwargs["mask"] = found
    elif len(tensor_args) > 1:
        for name, value in tensor_args.items():
            if f"{name}_mask" in names and kwargs.get(f"{name}_mask") is None:
                found = masks_of(value)
                if found is not None:
                    call_kwargs[f"{name}_mask"] = found
    if call_kwargs.get("mask") is not None:
        return call_kwargs["mask"]
    first = args[0] if args else bound.get(names[0]) if names else None
    return masks_of(first) if first is not None else None


def attach_output_masks(layer, inputs, outputs, previous_mask):
    """Keras's ``_set_mask_metadata`` for a symbolic call: the masks ``compute_mask`` gives
    (built from ops on KerasTensors, so they become graph operations) ride on the outputs."""
    if not (layer.supports_masking or layer._produces_masks()):
        return
    output_masks = layer.compute_mask(inputs, previous_mask)
    if output_masks is None:
        return
    for tensor, mask in zip(tree.flatten(outputs), tree.flatten(output_masks)):
        if isinstance(tensor, KerasTensor) and mask is not None:
            tensor._keras_mask = mask
