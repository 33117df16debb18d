"""Errors of the ArkFlow Python SDK: `Error` (the WIT `error`), its constructors by class, and the
translation of a `state-error` into an Error of class `state` whose code is the case's WIT name
and whose message reads like the Rust SDK's (`StateError::QuotaExceeded("...")`)."""
from componentize_py_types import Err
from wit_world.imports.types import Error as WitError
from wit_world.imports.types import ErrorClass


class Error(Exception):
    """An `error` of the WIT: raise it to fail a call, or pass it to `fail()` for one record."""

    def __init__(self, class_: ErrorClass, code: str, message: str):
        super().__init__(f"{class_.name.lower().replace('_', '-')} [{code}]: {message}")
        self.class_, self.code, self.message = class_, code, message

    def to_wit(self) -> WitError:
        return WitError(self.class_, self.code, self.message)


def invalid_input(code: str, message: str) -> Error:
    return Error(ErrorClass.INVALID_INPUT, code, message)


def config_error(code: str, message: str) -> Error:
    return Error(ErrorClass.CONFIG, code, message)


def state_error(code: str, message: str) -> Error:
    return Error(ErrorClass.STATE, code, message)


def retriable(code: str, message: str) -> Error:
    return Error(ErrorClass.RETRIABLE, code, message)


def internal(code: str, message: str) -> Error:
    return Error(ErrorClass.INTERNAL, code, message)


def from_state_error(variant) -> Error:
    """A `state-error` case as an Error of class `state` (code: the case's WIT name)."""
    case = type(variant).__name__.split("_", 1)[1]  # StateError_QuotaExceeded -> QuotaExceeded
    code = "".join("-" + c.lower() if c.isupper() else c for c in case).lstrip("-")
    payload = getattr(variant, "value", None)
    if payload is None:
        message = f"StateError::{case}"
    elif isinstance(payload, str):
        message = f"StateError::{case}({_rust_debug_str(payload)})"
    else:
        message = f"StateError::{case}({payload})"
    return state_error(code, message)


def state_call(f, *args):
    """`f(*args)`, with a `state-error` raised as an Error of class `state`."""
    try:
        return f(*args)
    except Err as e:
        raise from_state_error(e.value) from None


def _rust_debug_str(s: str) -> str:
    """`{:?}` of a Rust string, for messages identical to the Rust SDK's."""
    out = ['"']
    for c in s:
        if c in '"\\':
            out.append("\\" + c)
        elif c == "\n":
            out.append("\\n")
        elif c == "\r":
            out.append("\\r")
        elif c == "\t":
            out.append("\\t")
        elif c == "\0":
            out.append("\\0")
        elif ord(c) < 0x20 or ord(c) == 0x7F:
            out.append(f"\\u{{{ord(c):x}}}")
        else:
            out.append(c)
    out.append('"')
    return "".join(out)
