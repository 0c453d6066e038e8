"""Turn ``package.module:attribute`` into the handler (or lifespan) it names, or a clear
error."""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from typing import Any

from relay.worker.runtime import Handler, Lifespan


class HandlerError(Exception):
    pass


def _is_async_callable(obj: Any) -> bool:
    return inspect.iscoroutinefunction(obj) or inspect.iscoroutinefunction(
        getattr(obj, "__call__", None)  # noqa: B004 - an instance with async __call__
    )


def _load(path: str) -> Any:
    module_name, sep, attribute = path.partition(":")
    if not sep or not module_name or not attribute:
        raise HandlerError(f"{path!r} is not of the form package.module:function")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # like `python -m`: handlers beside you import
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise HandlerError(f"cannot import {module_name!r}: {type(exc).__name__}: {exc}") from None
    obj: Any = module
    for part in attribute.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise HandlerError(f"{module_name!r} has no attribute {attribute!r}") from None
    return obj


def load_handler(path: str) -> Handler:
    obj = _load(path)
    if not _is_async_callable(obj):
        raise HandlerError(f"{path!r} is not an async callable (define it with `async def`)")
    handler: Handler = obj
    return handler


def load_lifespan(path: str) -> Lifespan:
    """A callable returning an async context manager, such as a function decorated with
    ``contextlib.asynccontextmanager``."""
    obj = _load(path)
    if not callable(obj) or _is_async_callable(obj):
        raise HandlerError(
            f"{path!r} is not a lifespan: decorate an async generator function with "
            "@contextlib.asynccontextmanager"
        )
    lifespan: Lifespan = obj
    return lifespan
