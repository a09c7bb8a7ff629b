"""What the object namespaces share: serializing through the one saving entry point
(initializers, regularizers, constraints, metrics, learning-rate schedules), and resolving
`get` identifiers the way Keras does (initializers, regularizers, constraints)."""


def serialize_object(obj):
    # Imported here: amber.saving imports the namespaces to build its allowlist.
    from amber.saving import serialize_keras_object

    return serialize_keras_object(obj)


def deserialize_object(config, custom_objects, module_objects):
    """Rebuild an object from its config, looking built-in names up in `module_objects`."""
    from amber.saving import deserialize_keras_object

    return deserialize_keras_object(config, custom_objects=custom_objects, module_objects=module_objects)


def resolve_identifier(identifier, kind, from_name, deserialize):
    """A callable object from None (kept), a config dict (`deserialize`), a name (`from_name`),
    a class (instantiated with defaults) or a callable; anything else is a ValueError naming
    the `kind` of object that was expected."""
    if identifier is None:
        return None
    if isinstance(identifier, dict):
        obj = deserialize(identifier)
    elif isinstance(identifier, str):
        obj = from_name(identifier)
    else:
        obj = identifier
    if isinstance(obj, type):
        obj = obj()
    if callable(obj):
        return obj
    raise ValueError(f"Could not interpret {kind} identifier: {identifier!r}")
