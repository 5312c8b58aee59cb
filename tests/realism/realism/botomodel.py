"""Which AWS service and operation a request is, and its input parameters, read from
botocore's service models (generic over every service botocore knows)."""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any, Optional
from urllib.parse import parse_qsl, unquote

import botocore
import botocore.loaders
from botocore.model import ServiceModel, Shape

log = logging.getLogger("realism.model")

_CRED_RE = re.compile(r"Credential=([^/,\s]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request")


@dataclass
class Signature:
    access_key: str
    region: str
    service: str  # the signing name of the credential scope


def parse_signature(headers, query_pairs) -> Optional[Signature]:
    """The SigV4 credential scope of a request (header or presigned query), or None."""
    auth = headers.get("Authorization", "")
    if auth.startswith("AWS4-HMAC-SHA256"):
        m = _CRED_RE.search(auth)
        if m:
            return Signature(m.group(1), m.group(3), m.group(4))
        return None
    for k, v in query_pairs:
        if k == "X-Amz-Credential":
            parts = v.split("/")
            if len(parts) >= 5:
                return Signature(parts[0], parts[2], parts[3])
    return None


class Blob:
    """A blob parameter: only its length is kept (never its content)."""

    __slots__ = ("length",)

    def __init__(self, length: int):
        self.length = length

    def __repr__(self):
        return f"<blob {self.length} bytes>"


class ParseError(Exception):
    """The request does not follow the model closely enough to be validated."""


@dataclass
class Request:
    method: str
    raw_path: str  # path as sent, percent-encoded, without the query
    query: list  # decoded (key, value) pairs
    headers: Any  # case-insensitive multidict
    body: bytes
    host: str

    _form: Optional[list] = None

    def form(self) -> list:
        """Query parameters plus the url-encoded form body (query and ec2 protocols)."""
        if self._form is None:
            pairs = list(self.query)
            ctype = self.headers.get("Content-Type", "")
            if self.body and ("x-www-form-urlencoded" in ctype or (not ctype and self.method == "POST")):
                try:
                    pairs += parse_qsl(self.body.decode("utf-8"), keep_blank_values=True)
                except UnicodeDecodeError:
                    pass
            self._form = pairs
        return self._form


@dataclass
class Identified:
    service: str  # botocore service name, e.g. "sesv2"
    signing_name: str
    operation: str
    protocol: str  # json, rest-json, rest-xml, query, ec2, smithy-rpc-v2-cbor
    model: ServiceModel
    labels: dict = field(default_factory=dict)  # rest uri labels, decoded
    params: Optional[dict] = None  # None when the request could not be parsed
    parse_error: Optional[str] = None
    form: Optional[dict] = None  # query/ec2: flat parameters

    @property
    def op_model(self):
        return self.model.operation_model(self.operation)


class _Route:
    __slots__ = ("operation", "method", "regex", "query_literals", "literal_chars", "n_labels", "greedy")

    def __init__(self, operation, method, regex, query_literals, literal_chars, n_labels, greedy):
        self.operation = operation
        self.method = method
        self.regex = regex
        self.query_literals = query_literals
        self.literal_chars = literal_chars
        self.n_labels = n_labels
        self.greedy = greedy


def _compile_uri(template: str):
    path, _, query = template.partition("?")
    literals = {}
    for part in query.split("&"):
        if part:
            k, _, v = part.partition("=")
            literals[k] = v if "=" in part else None
    if len(path) > 1:
        path = path.rstrip("/")
    regex = "^"
    literal_chars = 0
    names = []
    pos = 0
    greedy = False
    for m in re.finditer(r"\{([^}]+)\}", path):
        lit = path[pos:m.start()]
        regex += re.escape(lit)
        literal_chars += len(lit.replace("/", ""))
        name = m.group(1)
        group = "g%d" % len(names)
        if name.endswith("+"):
            name = name[:-1]
            greedy = True
            regex += "(?P<%s>.+)" % group
        else:
            regex += "(?P<%s>[^/]+)" % group
        names.append(name)
        pos = m.end()
    lit = path[pos:]
    regex += re.escape(lit) + "$"
    literal_chars += len(lit.replace("/", ""))
    return re.compile(regex), names, literals, literal_chars, greedy


class ModelIndex:
    """Index of botocore's services by signing name; models are loaded when first needed."""

    def __init__(self, cache_dir: Optional[str] = None):
        self.loader = botocore.loaders.create_loader()
        self._models: dict[str, ServiceModel] = {}
        self._routes: dict[str, list] = {}
        self._ops_lower: dict[str, dict] = {}
        self.meta: dict[str, dict] = {}
        self.by_signing: dict[str, list] = {}
        self._load_index(cache_dir)

    # -- index ---------------------------------------------------------------------------
    def _load_index(self, cache_dir):
        cache_dir = cache_dir or os.path.join(
            os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "realism")
        path = os.path.join(cache_dir, "botocore-%s-index.json" % botocore.__version__)
        try:
            with open(path) as f:
                self.meta = json.load(f)
        except (OSError, ValueError):
            # Built in a child process: reading all ~440 models takes a few seconds and ~400 MB,
            # which the proxy itself then does not keep.
            try:
                subprocess.run([sys.executable, "-m", "realism.botomodel", path], check=True, timeout=300,
                               env=dict(os.environ, PYTHONPATH=os.pathsep.join(
                                   [os.path.dirname(os.path.dirname(os.path.abspath(__file__)))]
                                   + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])))
                with open(path) as f:
                    self.meta = json.load(f)
            except (OSError, ValueError, subprocess.SubprocessError) as e:
                log.warning("could not cache the model index in %s (%s): building it in this process", path, e)
                self.meta = build_index(self.loader)
        for name, md in self.meta.items():
            for key in {md["signingName"], md["endpointPrefix"]}:
                self.by_signing.setdefault(key, []).append(name)
        for key, names in self.by_signing.items():
            # The service named like its signing name first (rds before docdb and neptune).
            names.sort(key=lambda n, k=key: (n != k, self.meta[n]["signingName"] != k, n))

    def model(self, name: str) -> ServiceModel:
        m = self._models.get(name)
        if m is None:
            m = ServiceModel(self.loader.load_service_model(name, "service-2"), service_name=name)
            self._models[name] = m
        return m

    def has_operation(self, name: str, op: str) -> bool:
        ops = self._ops_lower.get(name)
        if ops is None:
            ops = set(self.model(name).operation_names)
            self._ops_lower[name] = ops
        return op in ops

    def routes(self, name: str) -> list:
        r = self._routes.get(name)
        if r is None:
            r = []
            model = self.model(name)
            for op in model.operation_names:
                http = model.operation_model(op).http
                uri = http.get("requestUri")
                if not uri:
                    continue
                regex, names, literals, literal_chars, greedy = _compile_uri(uri)
                r.append(_Route(op, http.get("method", "POST").upper(), (regex, names), literals,
                                literal_chars, len(names), greedy))
            self._routes[name] = r
        return r

    # -- identification --------------------------------------------------------------------
    def candidates(self, signing_name: str) -> list:
        return self.by_signing.get(signing_name) or self.by_signing.get(signing_name.lower()) or []

    def identify(self, sig: Signature, req: Request) -> Optional[Identified]:
        names = self.candidates(sig.service)
        if not names:
            return None
        headers = req.headers
        target = headers.get("X-Amz-Target")
        if target and "." in target:
            prefix, _, op = target.rpartition(".")
            for n in names:
                md = self.meta[n]
                if md.get("targetPrefix") == prefix and "json" in md["protocols"] and self.has_operation(n, op):
                    return Identified(n, sig.service, op, "json", self.model(n))
            return None
        ctype = headers.get("Content-Type", "")
        if headers.get("smithy-protocol") == "rpc-v2-cbor" or "cbor" in ctype:
            m = re.match(r"^/service/([^/]+)/operation/([^/]+)$", req.raw_path)
            if m:
                for n in names:
                    if self.has_operation(n, m.group(2)):
                        return Identified(n, sig.service, m.group(2), "smithy-rpc-v2-cbor", self.model(n))
            return None
        # query / ec2: an Action parameter
        query_like = [n for n in names if {"query", "ec2"} & set(self.meta[n]["protocols"])]
        if query_like:
            form = dict(req.form())
            action = form.get("Action")
            if action:
                version = form.get("Version")
                found = [n for n in query_like if self.has_operation(n, action)]
                found.sort(key=lambda n: (version is not None and self.meta[n]["apiVersion"] != version))
                if found:
                    n = found[0]
                    proto = "ec2" if "ec2" in self.meta[n]["protocols"] else "query"
                    return Identified(n, sig.service, action, proto, self.model(n), form=form)
        rest_like = [n for n in names if self.meta[n]["protocol"] in ("rest-json", "rest-xml")]
        best = None
        for rank, n in enumerate(rest_like):
            hit = self._match_rest(n, req)
            if hit is None:
                continue
            score, op, labels = hit
            key = (score, -rank)
            if best is None or key > best[0]:
                best = (key, n, op, labels)
        if best is None:
            return None
        _, n, op, labels = best
        return Identified(n, sig.service, op, self.meta[n]["protocol"], self.model(n), labels=labels)

    def _match_rest(self, name: str, req: Request):
        path = req.raw_path or "/"
        if name == "s3":
            bucket = s3_vhost_bucket(req.host)
            if bucket:
                path = "/" + bucket + (path if path != "/" else "")
        if len(path) > 1:
            path = path.rstrip("/") or "/"
        query_keys = {}
        for k, v in req.query:
            query_keys.setdefault(k, v)
        x_id = query_keys.get("x-id")
        best = None
        model = self.model(name)
        for route in self.routes(name):
            if route.method != req.method:
                continue
            regex, names = route.regex
            m = regex.match(path)
            if not m:
                continue
            ok = True
            for k, v in route.query_literals.items():
                if k == "x-id":
                    continue
                if k not in query_keys or (v is not None and query_keys[k] != v):
                    ok = False
                    break
            if not ok:
                continue
            labels = {nm: unquote(m.group("g%d" % i)) for i, nm in enumerate(names)}
            required_ok, required_n = _required_locations_present(model.operation_model(route.operation), req,
                                                                  query_keys)
            op_model = model.operation_model(route.operation)
            score = (
                x_id == route.operation if x_id else False,
                required_ok,
                not op_model.deprecated,
                required_n,
                len([k for k in route.query_literals if k != "x-id"]),
                route.literal_chars,
                -route.n_labels,
                not route.greedy,
            )
            if best is None or score > best[0]:
                best = (score, route.operation, labels)
        return best


def _required_locations_present(op_model, req: Request, query_keys: dict) -> tuple:
    """(all required headers and query parameters are there, how many there are)."""
    shape = op_model.input_shape
    if shape is None:
        return True, 0
    n = 0
    for name in shape.required_members:
        m = shape.members[name]
        loc = m.serialization.get("location")
        sname = m.serialization.get("name", name)
        if loc == "header":
            if sname not in req.headers:
                return False, n
            n += 1
        elif loc == "querystring" and m.type_name != "map":
            if sname not in query_keys:
                return False, n
            n += 1
    return True, n


def build_index(loader) -> dict:
    """Signing name, protocols, target prefix... of every service botocore knows."""
    meta = {}
    for name in loader.list_available_services("service-2"):
        try:
            md = loader.load_service_model(name, "service-2")["metadata"]
        except Exception as e:  # noqa: BLE001 - one broken model must not stop the proxy
            log.warning("skipping model %s: %s", name, e)
            continue
        meta[name] = {
            "protocol": md.get("protocol"),
            "protocols": md.get("protocols") or [md.get("protocol")],
            "signingName": md.get("signingName") or md.get("endpointPrefix") or name,
            "endpointPrefix": md.get("endpointPrefix") or name,
            "targetPrefix": md.get("targetPrefix"),
            "jsonVersion": md.get("jsonVersion"),
            "apiVersion": md.get("apiVersion"),
            "xmlNamespace": (md.get("xmlNamespace") or {}).get("uri") if isinstance(
                md.get("xmlNamespace"), dict) else md.get("xmlNamespace"),
        }
    return meta


def write_index(path: str):
    meta = build_index(botocore.loaders.create_loader())
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or ".")
    with os.fdopen(fd, "w") as f:
        json.dump(meta, f)
    os.replace(tmp, path)


_IP_RE = re.compile(r"^[\d.]+$|^\[")


def s3_vhost_bucket(host: str) -> Optional[str]:
    """The bucket of a virtual-host-style S3 request (bucket.s3.amazonaws.com,
    bucket.s3.localhost:4566, bucket.localhost:4566), or None for path style."""
    h = (host or "").rsplit(":", 1)[0].lower() if not (host or "").startswith("[") else ""
    if not h or _IP_RE.match(h) or h == "localhost":
        return None
    if h.startswith("s3.") or h.startswith("s3-"):
        return None
    m = re.match(r"^(.+?)\.s3[.-]", h)
    if m:
        return m.group(1)
    if h.endswith(".localhost"):
        return h[: -len(".localhost")]
    return None


# -- parsing the input parameters ---------------------------------------------------------

_INT_TYPES = ("integer", "long", "short", "byte")
_FLOAT_TYPES = ("float", "double", "bigdecimal")


def _scalar_from_text(shape: Shape, text: str):
    t = shape.type_name
    if t in _INT_TYPES:
        try:
            return int(text)
        except ValueError:
            raise ParseError("%s is not an integer" % text)
    if t in _FLOAT_TYPES:
        try:
            return float(text)
        except ValueError:
            raise ParseError("%s is not a number" % text)
    if t == "boolean":
        if text.lower() == "true":
            return True
        if text.lower() == "false":
            return False
        raise ParseError("%s is not a boolean" % text)
    if t == "blob":
        return _b64_blob(text)
    return text


def _b64_blob(text) -> Blob:
    if isinstance(text, (bytes, bytearray)):
        return Blob(len(text))
    s = text.strip()
    if not s:
        return Blob(0)
    if len(s) > 4096:  # do not decode big payloads: the length follows from the encoding
        pad = len(s) - len(s.rstrip("="))
        return Blob(len(s) * 3 // 4 - pad)
    try:
        return Blob(len(base64.b64decode(s, validate=False)))
    except (binascii.Error, ValueError):
        return Blob(len(s))


def parse_params(ident: Identified, req: Request) -> dict:
    """The operation's input as a dict of member name -> value (Blob for blobs)."""
    shape = ident.op_model.input_shape
    if shape is None:
        return {}
    p = ident.protocol
    if p == "json":
        if not req.body.strip():
            return {}
        try:
            doc = json.loads(req.body)
        except ValueError as e:
            raise ParseError("body is not JSON: %s" % e)
        return _from_json(shape, doc)
    if p in ("query", "ec2"):
        form = ident.form if ident.form is not None else dict(req.form())
        return _from_query(shape, form, "", p == "ec2", _prefix_set(form)) or {}
    if p in ("rest-json", "rest-xml"):
        return _parse_rest(shape, ident, req)
    raise ParseError("protocol %s is not parsed" % p)


def _prefix_set(form: dict) -> set:
    out = set()
    for k in form:
        parts = k.split(".")
        for i in range(1, len(parts) + 1):
            out.add(".".join(parts[:i]))
    return out


def _query_name(member: Shape, key: str, ec2: bool) -> str:
    if ec2:
        if "queryName" in member.serialization:
            return member.serialization["queryName"]
        name = member.serialization.get("name")
        if name:
            return name[0].upper() + name[1:]
        return key
    return member.serialization.get("name", key)


def _indices(form: dict, prefix: str) -> list:
    found = set()
    plen = len(prefix) + 1
    for k in form:
        if k.startswith(prefix + "."):
            head = k[plen:].split(".", 1)[0]
            if head.isdigit():
                found.add(int(head))
    return sorted(found)


def _from_query(shape: Shape, form: dict, prefix: str, ec2: bool, prefixes: set):
    t = shape.type_name
    if t == "structure":
        out = {}
        for name, member in shape.members.items():
            key = _query_name(member, name, ec2)
            p = "%s.%s" % (prefix, key) if prefix else key
            if p in prefixes:
                out[name] = _from_query(member, form, p, ec2, prefixes)
        return out
    if t == "list":
        if ec2:
            list_prefix = prefix
        elif shape.serialization.get("flattened"):
            list_prefix = prefix
            if shape.member.serialization.get("name"):
                list_prefix = ".".join(prefix.split(".")[:-1] + [shape.member.serialization["name"]])
        else:
            list_prefix = "%s.%s" % (prefix, shape.member.serialization.get("name", "member"))
        return [_from_query(shape.member, form, "%s.%d" % (list_prefix, i), ec2, prefixes)
                for i in _indices(form, list_prefix)]
    if t == "map":
        full = prefix if shape.serialization.get("flattened") else prefix + ".entry"
        ks = shape.key.serialization.get("name", "key")
        vs = shape.value.serialization.get("name", "value")
        out = {}
        for i in _indices(form, full):
            k = form.get("%s.%d.%s" % (full, i, ks))
            vp = "%s.%d.%s" % (full, i, vs)
            if k is not None:
                out[k] = _from_query(shape.value, form, vp, ec2, prefixes) if vp in prefixes else None
        return out
    if prefix not in form:
        raise ParseError("%s has members where a value was expected" % prefix)
    return _scalar_from_text(shape, form[prefix])


def _from_json(shape: Shape, value):
    t = shape.type_name
    if value is None:
        return None
    if t == "structure":
        if not isinstance(value, dict):
            raise ParseError("expected an object for %s" % shape.name)
        out = {}
        for name, member in shape.members.items():
            key = member.serialization.get("name", name)
            if key in value and value[key] is not None:
                out[name] = _from_json(member, value[key])
        return out
    if t == "list":
        if not isinstance(value, list):
            raise ParseError("expected a list for %s" % shape.name)
        return [_from_json(shape.member, v) for v in value]
    if t == "map":
        if not isinstance(value, dict):
            raise ParseError("expected a map for %s" % shape.name)
        return {k: _from_json(shape.value, v) for k, v in value.items()}
    if t == "blob":
        if isinstance(value, str):
            return _b64_blob(value)
        raise ParseError("expected base64 text for %s" % shape.name)
    if t in _INT_TYPES:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParseError("expected an integer for %s" % shape.name)
        return value
    if t in _FLOAT_TYPES:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ParseError("expected a number for %s" % shape.name)
        return value
    if t == "boolean":
        if not isinstance(value, bool):
            raise ParseError("expected a boolean for %s" % shape.name)
        return value
    if t == "string":
        if shape.serialization.get("jsonvalue") or isinstance(value, str):
            return value if isinstance(value, str) else json.dumps(value)
        raise ParseError("expected a string for %s" % shape.name)
    return value  # timestamps, documents


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _from_xml(shape: Shape, elem) -> Any:
    t = shape.type_name
    if t == "structure":
        out = {}
        children: dict[str, list] = {}
        for c in elem:
            children.setdefault(_local(c.tag), []).append(c)
        attrs = {_local(k): v for k, v in elem.attrib.items()}
        for name, member in shape.members.items():
            sname = member.serialization.get("name", name)
            if member.serialization.get("xmlAttribute"):
                local = sname.split(":")[-1]
                if local in attrs:
                    out[name] = attrs[local]
                continue
            if member.type_name == "list" and member.serialization.get("flattened"):
                items = children.get(sname) or children.get(member.member.serialization.get("name", ""), [])
                if items:
                    out[name] = [_from_xml(member.member, c) for c in items]
                continue
            if member.type_name == "map" and member.serialization.get("flattened"):
                items = children.get(sname, [])
                if items:
                    out[name] = _xml_map_entries(member, items)
                continue
            found = children.get(sname)
            if found:
                out[name] = _from_xml(member, found[0])
        return out
    if t == "list":
        mname = shape.member.serialization.get("name", "member")
        return [_from_xml(shape.member, c) for c in elem if _local(c.tag) == mname]
    if t == "map":
        return _xml_map_entries(shape, [c for c in elem if _local(c.tag) == "entry"])
    text = elem.text or ""
    if t == "blob":
        return _b64_blob(text)
    if t in ("string", "timestamp"):
        return text
    return _scalar_from_text(shape, text.strip())


def _xml_map_entries(shape: Shape, entries) -> dict:
    ks = shape.key.serialization.get("name", "key")
    vs = shape.value.serialization.get("name", "value")
    out = {}
    for e in entries:
        k = v = None
        for c in e:
            if _local(c.tag) == ks:
                k = c.text or ""
            elif _local(c.tag) == vs:
                v = _from_xml(shape.value, c)
        if k is not None:
            out[k] = v
    return out


def _parse_body_xml(body: bytes):
    try:
        return ET.fromstring(body)
    except ET.ParseError as e:
        raise ParseError("body is not XML: %s" % e)


def _parse_rest(shape: Shape, ident: Identified, req: Request) -> dict:
    params: dict = {}
    labels = ident.labels
    consumed_query = set()
    body_members = {}
    query_map_member = None
    for name, member in shape.members.items():
        loc = member.serialization.get("location")
        sname = member.serialization.get("name", name)
        if loc == "uri":
            if sname in labels:
                params[name] = _scalar_from_text(member, labels[sname])
        elif loc == "querystring":
            if member.type_name == "map":
                query_map_member = (name, member)
                continue
            values = [v for k, v in req.query if k == sname]
            consumed_query.add(sname)
            if values:
                if member.type_name == "list":
                    params[name] = [_scalar_from_text(member.member, v) for v in values]
                else:
                    params[name] = _scalar_from_text(member, values[0])
        elif loc == "header":
            if sname in req.headers:
                raw = ",".join(req.headers.getall(sname)) if hasattr(req.headers, "getall") else req.headers[sname]
                if member.type_name == "list":
                    params[name] = [_scalar_from_text(member.member, v.strip()) for v in raw.split(",") if v.strip()]
                elif member.type_name == "timestamp" or member.serialization.get("jsonvalue"):
                    params[name] = raw
                elif member.type_name == "blob":
                    params[name] = _b64_blob(raw)
                else:
                    params[name] = _scalar_from_text(member, raw)
        elif loc == "headers":
            prefix = sname.lower()
            found = {k[len(prefix):]: v for k, v in req.headers.items() if k.lower().startswith(prefix)}
            if found:
                params[name] = found
        elif loc == "statusCode":
            continue
        else:
            body_members[name] = member
    if query_map_member is not None:
        name, member = query_map_member
        rest = {}
        for k, v in req.query:
            if k not in consumed_query and k != "x-id":
                rest.setdefault(k, []).append(v)
        if rest:
            if member.value.type_name == "list":
                params[name] = rest
            else:
                params[name] = {k: v[0] for k, v in rest.items()}
    payload = shape.serialization.get("payload")
    body = req.body
    if payload:
        member = shape.members[payload]
        if member.type_name in ("blob", "string") or member.serialization.get("streaming"):
            if body:
                params[payload] = Blob(len(body)) if member.type_name == "blob" else body.decode("utf-8", "replace")
        elif body.strip():
            if ident.protocol == "rest-json":
                try:
                    params[payload] = _from_json(member, json.loads(body))
                except ValueError as e:
                    raise ParseError("body is not JSON: %s" % e)
            else:
                params[payload] = _from_xml(member, _parse_body_xml(body))
    elif body_members and body.strip():
        if ident.protocol == "rest-json":
            try:
                doc = json.loads(body)
            except ValueError as e:
                raise ParseError("body is not JSON: %s" % e)
            if not isinstance(doc, dict):
                raise ParseError("body is not a JSON object")
            for name, member in body_members.items():
                key = member.serialization.get("name", name)
                if key in doc and doc[key] is not None:
                    params[name] = _from_json(member, doc[key])
        else:
            root = _parse_body_xml(body)
            children = {}
            for c in root:
                children.setdefault(_local(c.tag), []).append(c)
            for name, member in body_members.items():
                key = member.serialization.get("name", name)
                if key in children:
                    params[name] = _from_xml(member, children[key][0])
    return params


if __name__ == "__main__":  # python -m realism.botomodel PATH: writes the index of botocore's models
    write_index(sys.argv[1])
