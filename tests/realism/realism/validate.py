"""Validation of parsed input parameters against the constraints of botocore's shapes:
required members, enum values, min/max (length, size, range) and patterns (matched on the
whole value, with Java's ASCII meaning of \\w, \\d and \\s, as AWS applies them)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Optional

import regex

from realism.botomodel import Blob

log = logging.getLogger("realism.validate")

PATTERN_TIMEOUT = 0.25  # seconds; a pattern that takes longer is not checked


@dataclass
class Violation:
    path: list  # member names and 1-based list indices, e.g. ["VpcConfig", "SubnetIds", 1]
    value: Any
    constraint: str  # the Coral-style sentence, e.g. "Member must not be null"
    kind: str  # required, enum, length, range, pattern
    sensitive: bool = False

    @property
    def missing(self) -> bool:
        return self.kind == "required"

    def coral_path(self) -> str:
        """AWS's path: lowerCamel member names, list items as N.member."""
        parts = []
        for p in self.path:
            if isinstance(p, int):
                parts.append("%d.member" % p)
            else:
                parts.append(p[:1].lower() + p[1:])
        return ".".join(parts)

    def top_name(self) -> str:
        for p in reversed(self.path):
            if isinstance(p, str):
                return p
        return ""

    def render_value(self) -> Optional[str]:
        v = self.value
        if self.sensitive or isinstance(v, Blob):
            return None
        if v is None:
            return "null"
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, list):
            return "[" + ", ".join(str(x) for x in v) + "]"
        s = str(v)
        if len(s) > 256:
            s = s[:256] + "..."
        return s

    def coral(self) -> str:
        v = self.render_value()
        if self.value is None:
            head = "Value null"
        elif v is None:
            head = "Value"
        else:
            head = "Value '%s'" % v
        return "%s at '%s' failed to satisfy constraint: %s" % (head, self.coral_path(), self.constraint)


def coral_message(violations: list) -> str:
    n = len(violations)
    return "%d validation error%s detected: %s" % (
        n, "" if n == 1 else "s", "; ".join(v.coral() for v in violations))


def _java_to_python(p: str) -> str:
    """Give \\w, \\d, \\s, \\b their ASCII (Java) meaning; the rest is passed through."""
    out = []
    i = 0
    depth = 0
    n = len(p)
    while i < n:
        c = p[i]
        if c == "\\" and i + 1 < n:
            e = p[i + 1]
            if depth:
                rep = {"w": "A-Za-z0-9_", "d": "0-9", "s": " \\t\\n\\x0B\\f\\r"}.get(e)
            else:
                rep = {"w": "[A-Za-z0-9_]", "W": "[^A-Za-z0-9_]", "d": "[0-9]", "D": "[^0-9]",
                       "s": "[ \\t\\n\\x0B\\f\\r]", "S": "[^ \\t\\n\\x0B\\f\\r]"}.get(e)
            if rep is not None:
                out.append(rep)
            else:
                out.append(c + e)
            i += 2
            continue
        if c == "[":
            # "[" inside a class is a literal in Python unless it opens a nested class (Java)
            depth += 1
            out.append(c)
            i += 1
            if i < n and p[i] == "^":
                out.append("^")
                i += 1
            if i < n and p[i] == "]":  # a leading ] is a literal
                out.append("\\]")
                i += 1
            continue
        if c == "]" and depth:
            depth -= 1
        out.append(c)
        i += 1
    return "".join(out)


class Patterns:
    """Compiled model patterns; those that cannot compile are skipped and counted."""

    def __init__(self):
        self._cache: dict[str, Any] = {}
        self.failed: set = set()

    def get(self, pattern: str):
        c = self._cache.get(pattern, 0)
        if c != 0:
            return c
        compiled = None
        for src in (_java_to_python(pattern), pattern):
            try:
                compiled = regex.compile(src, regex.V0)
                break
            except Exception:  # noqa: BLE001 - regex raises several error types
                continue
        if compiled is None:
            self.failed.add(pattern)
            log.debug("pattern not compiled, not checked: %s", pattern)
        self._cache[pattern] = compiled
        return compiled

    def precompile(self, model) -> int:
        """Compiles every pattern of a service model; returns how many could not compile."""
        before = len(self.failed)
        seen = set()

        def walk(shape):
            if shape is None or shape.name in seen:
                return
            seen.add(shape.name)
            pat = shape.metadata.get("pattern")
            if pat:
                self.get(pat)
            t = shape.type_name
            if t == "structure":
                for m in shape.members.values():
                    pat = m.metadata.get("pattern")
                    if pat:
                        self.get(pat)
                    walk(m)
            elif t == "list":
                walk(shape.member)
            elif t == "map":
                walk(shape.key)
                walk(shape.value)

        for op in model.operation_names:
            walk(model.operation_model(op).input_shape)
        return len(self.failed) - before


class Validator:
    def __init__(self, patterns: Optional[Patterns] = None):
        self.patterns = patterns or Patterns()

    def validate(self, op_model, params: dict, protocol: str) -> list:
        shape = op_model.input_shape
        if shape is None:
            return []
        out: list = []
        self._structure(shape, params, [], out, top=True, protocol=protocol)
        return out

    def _structure(self, shape, value, path, out, top=False, protocol=""):
        if not isinstance(value, dict):
            return
        for name in shape.required_members:
            if name in value and value[name] is not None:
                continue
            member = shape.members.get(name)
            if member is None:
                continue
            ser = member.serialization
            if top and protocol in ("rest-json", "rest-xml"):
                # What the HTTP layer may carry elsewhere is not invented as null.
                if ser.get("location") in ("uri", "statusCode") or ser.get("hostLabel"):
                    continue
                if ser.get("streaming") or (shape.serialization.get("payload") == name
                                            and member.type_name in ("blob", "string")):
                    continue
            out.append(Violation(path + [name], None, "Member must not be null", "required",
                                 bool(member.metadata.get("sensitive"))))
        for name, v in value.items():
            member = shape.members.get(name)
            if member is None or v is None:
                continue
            self._value(member, v, path + [name], out)

    def _value(self, shape, v, path, out):
        md = shape.metadata
        t = shape.type_name
        sensitive = bool(md.get("sensitive"))
        if t == "structure":
            self._structure(shape, v, path, out)
            return
        if t == "list":
            if not isinstance(v, list):
                return
            self._length(md, len(v), v, path, out, sensitive)
            for i, item in enumerate(v, 1):
                if item is not None:
                    self._value(shape.member, item, path + [i], out)
            return
        if t == "map":
            if not isinstance(v, dict):
                return
            self._length(md, len(v), v, path, out, sensitive)
            for k, item in v.items():
                self._value(shape.key, k, path + [str(k)], out)
                if item is not None:
                    self._value(shape.value, item, path + [str(k)], out)
            return
        if t == "blob":
            if isinstance(v, Blob):
                self._length(md, v.length, v, path, out, sensitive)
            return
        if t == "string":
            if not isinstance(v, str):
                return
            enum = md.get("enum")
            if enum and v not in enum:
                out.append(Violation(path, v, "Member must satisfy enum value set: [%s]" % ", ".join(enum),
                                     "enum", sensitive))
                return
            self._length(md, len(v), v, path, out, sensitive)
            pat = md.get("pattern")
            if pat:
                compiled = self.patterns.get(pat)
                if compiled is not None:
                    try:
                        ok = compiled.fullmatch(v, timeout=PATTERN_TIMEOUT) is not None
                    except TimeoutError:
                        ok = True
                    if not ok:
                        out.append(Violation(path, v, "Member must satisfy regular expression pattern: %s" % pat,
                                             "pattern", sensitive))
            return
        if t in ("integer", "long", "float", "double", "short", "byte", "bigdecimal"):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                return
            lo, hi = md.get("min"), md.get("max")
            if lo is not None and v < lo:
                out.append(Violation(path, v, "Member must have value greater than or equal to %s" % _num(lo),
                                     "range", sensitive))
            elif hi is not None and v > hi:
                out.append(Violation(path, v, "Member must have value less than or equal to %s" % _num(hi),
                                     "range", sensitive))

    @staticmethod
    def _length(md, n, v, path, out, sensitive):
        lo, hi = md.get("min"), md.get("max")
        if lo is not None and n < lo:
            out.append(Violation(path, v, "Member must have length greater than or equal to %s" % _num(lo),
                                 "length", sensitive))
        elif hi is not None and n > hi:
            out.append(Violation(path, v, "Member must have length less than or equal to %s" % _num(hi),
                                 "length", sensitive))


def _num(x) -> str:
    if isinstance(x, float) and x.is_integer():
        return str(int(x))
    return str(x)
