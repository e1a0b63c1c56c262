"""The one restricted unpickler: pickles read without running the code they name.

A pickle names globals (``module.name``) that the loader would import and call. A
:class:`RestrictedUnpickler` asks its caller's ``resolve(module, name)`` for each one
and never imports anything itself; what ``resolve`` does not know is handled by the
caller's explicit policy:

* ``"refuse"``: the load stops with ``pickle.UnpicklingError`` naming the global
  (:mod:`humansd_core.pose.npz`: a pose file holds arrays, numbers, lists and dicts,
  anything else is an attack or a foreign file);
* ``"inert"``: the global becomes a :class:`Placeholder` subclass that only records
  what it is handed (:mod:`humansd_core.models.safe_unpickle`: a Lightning ``.ckpt``
  carries hyper-parameters, callbacks and loop state whose classes we do not have, and
  only its tensors are wanted).
"""
from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import IO, Any, Literal

UnknownGlobals = Literal["refuse", "inert"]
Resolver = Callable[[str, str], Any]


class Placeholder:
    """Inert stand-in for a class or function a pickle names.

    Subclasses are made per global (``module``/``name`` recorded); instances only store
    what the pickle hands them (``__new__``/``__setstate__`` arguments, appends, item
    assignments), and "calling" one yields another inert instance: a payload such as
    ``os.system`` reduces to a placeholder, never a call.
    """

    module = ""
    name = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args
        self.kwargs = kwargs
        self.state: Any = None
        self.items: list[Any] = []

    def __new__(cls, *args: Any, **kwargs: Any) -> Placeholder:  # noqa: ARG003 - pickle passes NEWOBJ args
        return super().__new__(cls)

    def __call__(self, *args: Any, **kwargs: Any) -> Placeholder:
        return type(self)(*args, **kwargs)

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def append(self, item: Any) -> None:
        self.items.append(item)

    def extend(self, items: Any) -> None:
        self.items.extend(items)

    def __setitem__(self, key: Any, value: Any) -> None:
        self.items.append((key, value))

    def __repr__(self) -> str:
        return f"<inert {self.module}.{self.name}>"


class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` whose globals come from ``resolve`` only.

    Args:
        file: a binary file positioned at the pickle.
        resolve: ``(module, name) -> object`` for the globals the caller admits, or
            ``None`` for any other.
        unknown: what happens to a global ``resolve`` returns ``None`` for (see the
            module docstring): ``"refuse"`` raises, ``"inert"`` gives a placeholder.
    """

    def __init__(self, file: IO[bytes], resolve: Resolver, unknown: UnknownGlobals) -> None:
        super().__init__(file)
        if unknown not in ("refuse", "inert"):
            raise ValueError(f"unknown globals policy {unknown!r}: expected 'refuse' or 'inert'")
        self._resolve = resolve
        self._unknown = unknown
        self._placeholders: dict[tuple[str, str], type[Placeholder]] = {}

    def find_class(self, module: str, name: str) -> Any:
        found = self._resolve(module, name)
        if found is not None:
            return found
        if self._unknown == "refuse":
            raise pickle.UnpicklingError(f"refused to load global {module}.{name}")
        if (module, name) not in self._placeholders:
            self._placeholders[module, name] = type(f"Inert_{name}", (Placeholder,), {"module": module, "name": name})
        return self._placeholders[module, name]
