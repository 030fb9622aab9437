"""Checkpoints with orbax that remember which wrappers a tree was saved with.

orbax's standard checkpointer saves and restores lensify trees as they are, but it
knows only each leaf's key path, shape and dtype. A tree saved with ``lf.positive(x)``
restores without a word into a target holding ``lf.interval(...)`` at the same place
(both keep a child named ``raw``), and the raw value, a softplus preimage, is then
read as a logit. :func:`save` writes, next to the arrays, the wrapper types and their
static configuration (interval bounds, axes, functions) at every key path, and
:func:`restore` refuses a target that differs, naming the key path.

Both sit on orbax's ``CompositeCheckpointHandler``: the arrays are one item, saved by
orbax's standard handler (sharded and multi-host as orbax does it), and the wrapper
types are a JSON item. Saving is asynchronous, as orbax's is.

This module needs orbax (``pip install 'lensify[checkpoint]'``); ``import lensify``
does not import it.
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
import re
import threading
import types
import warnings
from typing import Any

import attrs
import numpy as np

import lensify
from lensify import _records, _tree

try:
    import orbax.checkpoint as ocp
    from etils import epath
except ModuleNotFoundError as error:  # pragma: no cover - exercised without orbax only
    raise ModuleNotFoundError(
        "lensify.checkpoint saves with orbax, which is not installed. Install it with "
        "pip install 'lensify[checkpoint]' (or pip install orbax-checkpoint)."
    ) from error

__all__ = ["CheckpointMismatchError", "save", "restore", "wrapper_types"]

# 2: array configuration recorded exactly (by value, or by a content hash when
# large), functions by what identifies them (a partial's arguments, a lambda's code).
FORMAT = 2
TREE_ITEM = "tree"
TYPES_ITEM = "lensify"


class CheckpointMismatchError(ValueError):
    """A checkpoint does not fit the target tree: wrapper types, structure or shapes."""


def save(path: Any, tree: Any, *, force: bool = False, checkpointer: Any = None) -> Any:
    """Save ``tree`` with orbax, together with the wrapper types it holds.

    The save is asynchronous, as orbax's is: once the arrays are copied off the
    devices, this returns and the files are written in the background. Call
    ``.wait_until_finished()`` on the returned checkpointer before reading the
    checkpoint or leaving the program.

    Args:
        path: The checkpoint directory (it must not exist unless ``force``).
        tree: Any pytree of arrays and wrappers, sharded or not.
        force: Overwrite an existing checkpoint at ``path``.
        checkpointer: An ``orbax.checkpoint.AsyncCheckpointer`` (or ``Checkpointer``)
            over a ``CompositeCheckpointHandler`` to save with, for example the one
            returned by a previous save; a new asynchronous one if omitted.

    Returns:
        The checkpointer that is writing the checkpoint.

    Example:
        >>> import tempfile, jax.numpy as jnp
        >>> import lensify as lf, lensify.checkpoint
        >>> path = tempfile.mkdtemp() + "/ckpt"
        >>> model = {"scale": lf.positive(jnp.array([0.5, 2.0]))}
        >>> lensify.checkpoint.save(path, model).wait_until_finished()
        >>> restored = lensify.checkpoint.restore(path, model)
        >>> restored
        {'scale': Positive(raw=Array([-0.43275213,  1.8545866 ], dtype=float32))}
    """
    if checkpointer is None:
        checkpointer = ocp.AsyncCheckpointer(_handler())
    summary = _summary(tree)
    _warn_unidentified(summary)
    args = ocp.args.Composite(
        **{TREE_ITEM: ocp.args.StandardSave(tree), TYPES_ITEM: ocp.args.JsonSave(summary)}
    )
    directory = _directory(path)
    checkpointer.save(directory, args=args, force=force)
    if hasattr(checkpointer, "wait_until_finished"):
        with _PENDING_LOCK:
            _PENDING[directory] = checkpointer
    return checkpointer


# The checkpointers of this process's saves, by directory, so that a restore of the
# same directory waits for its save to finish rather than finding nothing there. Held
# strongly: a caller who drops the checkpointer save returned still gets the wait.
_PENDING: dict[str, Any] = {}
_PENDING_LOCK = threading.Lock()


def _wait_for_save(directory: str) -> None:
    with _PENDING_LOCK:
        pending = _PENDING.pop(directory, None)
    if pending is not None:
        pending.wait_until_finished()


def restore(path: Any, like: Any, *, checkpointer: Any = None) -> Any:
    """Restore a checkpoint written by :func:`save` into the structure of ``like``.

    ``like`` is the tree to fill: the model itself, or an abstract copy whose array
    leaves are ``jax.ShapeDtypeStruct`` (``jax.eval_shape(lambda: model)``); their
    shardings, if any, are the shardings of the restored arrays, as with orbax.

    Raises:
        CheckpointMismatchError: if a wrapper at some key path differs from the one
            saved there (its type or static configuration, such as interval bounds),
            or the structure or an array's shape differs. The message names the key
            path.

    Example:
        >>> import tempfile, jax.numpy as jnp
        >>> import lensify as lf, lensify.checkpoint
        >>> path = tempfile.mkdtemp() + "/ckpt"
        >>> x = jnp.array([0.5, 0.8])
        >>> lensify.checkpoint.save(path, {"p": lf.positive(x)}).wait_until_finished()
        >>> lensify.checkpoint.restore(path, {"p": lf.interval(x, 0.0, 1.0)})
        Traceback (most recent call last):
        ...
        lensify.checkpoint.CheckpointMismatchError: ['p'] holds lensify.Positive in ...
    """
    directory = _directory(path)
    _wait_for_save(directory)
    owned = checkpointer is None
    if owned:
        checkpointer = ocp.Checkpointer(_handler())
    try:
        _check_written_by_save(checkpointer, directory)
        try:
            recorded = checkpointer.restore(
                directory, args=ocp.args.Composite(**{TYPES_ITEM: ocp.args.JsonRestore()})
            )[TYPES_ITEM]
        except (KeyError, FileNotFoundError) as error:
            raise CheckpointMismatchError(
                f"the checkpoint at {directory} is incomplete: its {TYPES_ITEM!r} item (the "
                "wrapper types and configuration lensify compares) is missing, so a "
                "save was interrupted or its files were removed. Save the model again."
            ) from error
        _compare(recorded, _summary(like))
        restored = checkpointer.restore(
            directory, args=ocp.args.Composite(**{TREE_ITEM: ocp.args.StandardRestore(like)})
        )
        return restored[TREE_ITEM]
    finally:
        if owned:
            checkpointer.close()


def _check_written_by_save(checkpointer: Any, directory: Any) -> None:
    if not epath.Path(directory).exists():
        raise FileNotFoundError(f"no checkpoint at {directory}.")
    try:
        items = checkpointer.metadata(directory).item_handlers
    except ValueError:  # orbax's complaint about a checkpoint of a single item
        items = None
    if not isinstance(items, dict) or TYPES_ITEM not in items or TREE_ITEM not in items:
        raise CheckpointMismatchError(
            f"{directory} was not written by lensify.checkpoint.save, so it holds no "
            "wrapper types to check. Restore a checkpoint written by orbax's standard "
            "checkpointer with orbax.checkpoint.StandardCheckpointer().restore(path, like)."
        )


def wrapper_types(tree: Any) -> dict[str, dict[str, Any]]:
    """The records in ``tree`` by key path: their type and static configuration.

    This is what :func:`save` records and :func:`restore` compares. Types that
    ``lensify`` exports are named by their public name (``lensify.Positive``), so a
    checkpoint does not depend on the module that defines them.

    Example:
        >>> import jax.numpy as jnp
        >>> import lensify as lf, lensify.checkpoint
        >>> lensify.checkpoint.wrapper_types({"b": lf.interval(jnp.zeros(2), -1.0, 1.0)})
        {"['b']": {'type': 'lensify.Interval', 'static': {'lower': -1.0, 'upper': 1.0}}}
    """
    records: dict[str, dict[str, Any]] = _summary(tree)["records"]
    return records


def _handler() -> Any:
    # The items named with their handlers, so that orbax can read one item alone.
    handlers = {TREE_ITEM: ocp.StandardCheckpointHandler(), TYPES_ITEM: ocp.JsonCheckpointHandler()}
    return ocp.CompositeCheckpointHandler(**handlers)


def _directory(path: Any) -> Any:
    text = os.fspath(path)
    return text if "://" in text else os.path.abspath(text)


def _summary(tree: Any) -> dict[str, Any]:
    """What a save records of ``tree``: its records and its leaves by key path, in
    flatten order, from one walk (the key paths are JAX's, as orbax's are)."""
    records: dict[str, Any] = {}
    leaves: dict[str, Any] = {}
    for path, node, pairs in _tree.walk(tree):
        if pairs is None:
            leaves[_tree.keystr(path)] = _leaf_summary(node)
        elif isinstance(node, _records.Record):
            records[_tree.keystr(path)] = {
                "type": _type_name(type(node)),
                "static": _static_config(node, pairs),
            }
    return {"format": FORMAT, "records": records, "leaves": leaves}


def _type_name(cls: type) -> str:
    if getattr(lensify, cls.__name__, None) is cls:
        return f"lensify.{cls.__name__}"
    return f"{cls.__module__}.{cls.__qualname__}"


def _static_config(node: Any, pairs: list[tuple[Any, Any]]) -> dict[str, Any]:
    # Everything that is not a child: static fields and functions kept in the structure.
    children = {key.name for key, _ in pairs}
    fields = attrs.fields(type(node))
    return {f.name: _jsonable(getattr(node, f.name)) for f in fields if f.name not in children}


_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if _tree.is_array(value):
        return _array_record(value)
    if hasattr(value, "__array__"):  # an array held as configuration (a static bound)
        return _array_record(value)
    if callable(value):
        return _function_record(value)
    # Anything else by its repr, less memory addresses, which differ between runs.
    return _ADDRESS.sub("", repr(value))


# Arrays up to this size are recorded by value, larger ones by a content hash.
_BY_VALUE = 64


def _array_record(value: Any) -> dict[str, Any]:
    """An array, recorded exactly: dtype, shape and its values or a hash of its bytes.

    Independent of numpy's print options and version: values are Python numbers
    (exact for every float dtype), and the hash is of the raw bytes in C order.
    """
    array = np.asarray(value)
    record: dict[str, Any] = {"dtype": str(array.dtype), "shape": list(array.shape)}
    finite = array.dtype.kind not in "fc" or bool(np.isfinite(array).all())
    if array.size <= _BY_VALUE and finite:
        record["values"] = array.ravel().tolist()
    else:
        record["sha256"] = hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()
    return record


def _function_record(fn: Any) -> Any:
    """What identifies a function: its name, and for a partial or a local function
    what it holds (a partial's function and arguments, a lambda's code and closure)."""
    if isinstance(fn, functools.partial):
        return {
            "partial": _function_record(fn.func),
            "args": [_jsonable(a) for a in fn.args],
            "kwargs": {str(k): _jsonable(v) for k, v in fn.keywords.items()},
        }
    name = getattr(fn, "__qualname__", None) or type(fn).__qualname__
    module = getattr(fn, "__module__", None) or type(fn).__module__
    if not isinstance(fn, types.FunctionType) or not ("<" in name or _imports_as_other(fn)):
        return f"{module}.{name}"
    closure = [_jsonable(cell.cell_contents) for cell in fn.__closure__ or ()]
    record: dict[str, Any] = {
        "function": f"{module}.{name}",
        "code": _code_hash(fn.__code__),
        "closure": closure,
    }
    if any(isinstance(c, str) and c.startswith("<") for c in closure):
        record["unidentified"] = True  # a closure value known only by its repr
    return record


def _imports_as_other(fn: Any) -> bool:
    # A module-level function is identified by its import name, unless the name now
    # names something else (a function redefined in a notebook cell).
    module = __import__("sys").modules.get(fn.__module__)
    return getattr(module, fn.__name__, None) is not fn


def _code_hash(code: types.CodeType) -> str:
    digest = hashlib.sha256(code.co_code)
    for const in code.co_consts:
        text = _code_hash(const) if isinstance(const, types.CodeType) else repr(const)
        digest.update(text.encode())
    digest.update(repr(code.co_names).encode())
    return digest.hexdigest()


def _unidentified(entry: Any) -> bool:
    if isinstance(entry, dict):
        return entry.get("unidentified") is True or any(map(_unidentified, entry.values()))
    if isinstance(entry, list):
        return any(map(_unidentified, entry))
    return False


def _warn_unidentified(summary: dict[str, Any]) -> None:
    # A function that closes over an object known only by its repr cannot be told
    # apart from another one closing over a different object of the same kind.
    for path, entry in summary["records"].items():
        if _unidentified(entry):
            warnings.warn(
                f"lensify.checkpoint.save: the function at {path} closes over a value that "
                "can only be recorded by its repr, so restore cannot tell it apart from "
                "another function of the same code. Prefer functools.partial with plain "
                "numbers or arrays, or a module-level function.",
                stacklevel=3,
            )


def _leaf_summary(leaf: Any) -> dict[str, Any]:
    shape = getattr(leaf, "shape", None)
    if shape is None:
        return {"type": type(leaf).__name__}
    return {"shape": list(shape), "dtype": str(leaf.dtype)}


def _describe_record(entry: dict[str, Any] | None) -> str:
    if entry is None:
        return "no wrapper"
    static = ", ".join(f"{k}={v!r}" for k, v in entry["static"].items())
    return f"{entry['type']}({static})" if static else entry["type"]


def _compare(recorded: dict[str, Any], target: dict[str, Any]) -> None:
    if recorded.get("format") != FORMAT:
        raise CheckpointMismatchError(
            f"this checkpoint has lensify checkpoint format {recorded.get('format')!r}; "
            f"this version of lensify reads format {FORMAT}. Format 1 recorded array "
            "configuration and functions inexactly, so it cannot be checked: restore its "
            f"{TREE_ITEM!r} item with orbax.checkpoint.StandardCheckpointer into the model "
            "you know it was saved from, and save that model again."
        )
    saved_records, target_records = recorded["records"], target["records"]
    for path in [*saved_records, *(p for p in target_records if p not in saved_records)]:
        saved, wanted = saved_records.get(path), target_records.get(path)
        if saved != wanted:
            raise CheckpointMismatchError(
                f"{path} holds {_describe_record(saved)} in the checkpoint, but the target "
                f"has {_describe_record(wanted)} there. Each wrapper reads its stored values "
                "in its own way, so restoring into another one would silently change the "
                "model. Restore into a tree built with the same wrappers (the saved model, "
                "or jax.eval_shape of the code that built it)."
            )
    saved_leaves, target_leaves = recorded["leaves"], target["leaves"]
    for path in saved_leaves:
        if path not in target_leaves:
            raise CheckpointMismatchError(
                f"the checkpoint holds a leaf at {path}, which the target does not have. "
                "Restore into a tree of the same structure as the one saved."
            )
    for path, wanted in target_leaves.items():
        saved = saved_leaves.get(path)
        if saved is None:
            raise CheckpointMismatchError(
                f"the target has a leaf at {path}, which the checkpoint does not hold. "
                "Restore into a tree of the same structure as the one saved."
            )
        if "shape" in saved and "shape" in wanted and saved["shape"] != wanted["shape"]:
            raise CheckpointMismatchError(
                f"{path} has shape {tuple(saved['shape'])} in the checkpoint, but "
                f"{tuple(wanted['shape'])} in the target."
            )
        if "dtype" in saved and "dtype" in wanted and saved["dtype"] != wanted["dtype"]:
            raise CheckpointMismatchError(
                f"{path} has dtype {saved['dtype']} in the checkpoint, but {wanted['dtype']} "
                "in the target. Restore into a target of the saved dtype, then cast the "
                "restored array if you want another."
            )
