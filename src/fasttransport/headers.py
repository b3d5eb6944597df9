"""Headers: the case-insensitive, order-preserving multi-map of a request's
and a response's fields, and the checks a field must pass to be sent."""

from __future__ import annotations

from typing import (
    Dict,
    Iterable,
    Iterator,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    TypeVar,
    Union,
    overload,
)

from . import _core
from .errors import InvalidRequest

__all__ = ["Headers", "HeaderTypes"]

HeaderTypes = Union["Headers", Mapping[str, str], Sequence[Tuple[str, str]], None]

_T = TypeVar("_T")


class Headers:
    """Case-insensitive, order-preserving multi-map of str names and values.

    ``h[name]`` joins repeated fields with ", "; ``get_list`` returns each;
    ``items()`` yields every pair in order; iteration yields distinct names;
    ``len()`` counts pairs.
    """

    __slots__ = ("_list", "_index")

    def __init__(self, headers: HeaderTypes = None) -> None:
        if headers is None:
            self._list: List[Tuple[str, str]] = []
        elif isinstance(headers, Headers):
            self._list = list(headers._list)
        elif isinstance(headers, Mapping):
            self._list = [(str(k), str(v)) for k, v in headers.items()]
        else:
            self._list = [(str(k), str(v)) for k, v in headers]
        self._index: Optional[Dict[str, List[int]]] = None

    @classmethod
    def _from_pairs(cls, pairs: List[Tuple[str, str]]) -> "Headers":
        h = cls.__new__(cls)
        h._list = pairs
        h._index = None
        return h

    def _idx(self) -> Dict[str, List[int]]:
        idx = self._index
        if idx is None:
            idx = {}
            for i, (k, _) in enumerate(self._list):
                idx.setdefault(k.lower(), []).append(i)
            self._index = idx
        return idx

    def get_list(self, name: str) -> List[str]:
        ids = self._idx().get(name.lower())
        return [self._list[i][1] for i in ids] if ids else []

    def __getitem__(self, name: str) -> str:
        ids = self._idx().get(name.lower())
        if not ids:
            raise KeyError(name)
        return ", ".join(self._list[i][1] for i in ids)

    @overload
    def get(self, name: str) -> Optional[str]: ...
    @overload
    def get(self, name: str, default: _T) -> Union[str, _T]: ...

    def get(self, name: str, default: object = None) -> object:
        try:
            return self[name]
        except KeyError:
            return default

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._idx()

    def __iter__(self) -> Iterator[str]:
        seen = set()
        for k, _ in self._list:
            low = k.lower()
            if low not in seen:
                seen.add(low)
                yield k

    def keys(self) -> List[str]:
        return list(self)

    def values(self) -> List[str]:
        return [self[k] for k in self]

    def items(self) -> List[Tuple[str, str]]:
        return list(self._list)

    def multi_items(self) -> List[Tuple[str, str]]:
        return list(self._list)

    def __len__(self) -> int:
        return len(self._list)

    def __setitem__(self, name: str, value: str) -> None:
        _check_headers(((name, value),))     # what a Request would refuse
        low = name.lower()
        self._list = [(k, v) for k, v in self._list if k.lower() != low]
        self._list.append((name, value))
        self._index = None

    def add(self, name: str, value: str) -> None:
        _check_headers(((name, value),))
        self._list.append((name, value))
        self._index = None

    def __delitem__(self, name: str) -> None:
        low = name.lower()
        if low not in self._idx():
            raise KeyError(name)
        self._list = [(k, v) for k, v in self._list if k.lower() != low]
        self._index = None

    @overload
    def pop(self, name: str) -> Optional[str]: ...
    @overload
    def pop(self, name: str, default: _T) -> Union[str, _T]: ...

    def pop(self, name: str, default: object = None) -> object:
        value = self.get(name, default)
        if name in self:
            del self[name]
        return value

    def copy(self) -> "Headers":
        return Headers(self)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Headers):
            other_list = other._list
        elif isinstance(other, Mapping):
            other_list = list(other.items())
        else:
            return NotImplemented
        return sorted((k.lower(), v) for k, v in self._list) == sorted(
            (k.lower(), v) for k, v in other_list)

    def __repr__(self) -> str:
        return f"Headers({self._list!r})"


def _check_headers(pairs: Iterable[Tuple[str, str]]) -> None:
    """Raise InvalidRequest (Go's texts, the value never echoed) for a name
    that is not a token or a value with CR, LF, NUL or another control byte,
    or with a character that latin-1 cannot carry."""
    is_token, is_valid_value = _core.is_token, _core.is_valid_value
    for name, value in pairs:
        if not is_token(name):
            raise InvalidRequest(f'net/http: invalid header field name "{name}"')
        if not is_valid_value(value) or not (value.isascii() or _is_latin1(value)):
            raise InvalidRequest(f'net/http: invalid header field value for "{name}"')


def _is_latin1(value: str) -> bool:
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True
