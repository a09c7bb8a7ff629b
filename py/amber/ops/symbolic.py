"""Ops called on symbolic tensors become nodes of the Functional graph being built.

Keras lets model-building code call ``keras.ops`` on ``KerasTensor``s (``ops.not_equal(x, 0)``;
layers' ``compute_mask`` does so while a model is built), and records each call as an operation
node the saved config lists. amber's numeric ops refuse a KerasTensor with a TypeError (it has
no value); the ops that have a graph operation catch it and call ``record_or_raise`` from their
``except`` clause. Calls on values pay nothing: a ``try`` block is free until it raises.
"""


def record_or_raise(op_name, *args, **kwargs):
    """From an op's ``except TypeError:`` clause: the graph node for ``ops.<op_name>(*args,
    **kwargs)`` if an argument is symbolic, else the TypeError being handled, re-raised (also
    when ``op_name`` is None: a helper op that leaves recording to its caller)."""
    from amber.layers.keras_tensor import any_symbolic

    if op_name is None or not any_symbolic(args, kwargs):
        raise  # noqa: PLE0704 -- re-raises the TypeError the calling op is handling
    from amber.layers import graph_ops

    return graph_ops.record_call(op_name, args, kwargs)
