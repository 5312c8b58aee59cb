"""The call log: one JSON line per request in <log-dir>/<name>.calls.jsonl and a ring in memory."""

from __future__ import annotations

import collections
import datetime
import json
import os
from typing import Optional

from realism.botomodel import Blob

RING = 50_000
MAX_VALUE = 200


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def key_params(op_model, params: Optional[dict]) -> dict:
    """Names, ids and other short top-level values; never blobs, secrets or bodies."""
    if not params or op_model is None or op_model.input_shape is None:
        return {}
    shape = op_model.input_shape
    out = {}
    for name, v in params.items():
        member = shape.members.get(name)
        if member is None or member.metadata.get("sensitive") or isinstance(v, Blob):
            continue
        t = member.type_name
        if t in ("string", "integer", "long", "boolean", "float", "double"):
            if isinstance(v, str) and len(v) > MAX_VALUE:
                v = v[:MAX_VALUE] + "...(%d chars)" % len(v)
            out[name] = v
        elif t == "list" and member.member.type_name == "string" and isinstance(v, list):
            out[name] = [s if len(s) <= MAX_VALUE else s[:MAX_VALUE] + "..." for s in v[:10]
                         if isinstance(s, str)] + (["...(%d items)" % len(v)] if len(v) > 10 else [])
        elif t == "structure" and isinstance(v, dict):
            # one level down: ids in VpcConfig, Code.S3Key and the like
            sub = {}
            for k, sv in v.items():
                sm = member.members.get(k)
                if sm is None or sm.metadata.get("sensitive") or isinstance(sv, Blob):
                    continue
                if sm.type_name == "string" and isinstance(sv, str) and len(sv) <= MAX_VALUE:
                    sub[k] = sv
                elif sm.type_name == "list" and isinstance(sv, list) and all(isinstance(x, str) for x in sv):
                    sub[k] = sv[:10]
            if sub:
                out[name] = sub
    return out


class CallLog:
    def __init__(self, log_dir: str, name: str):
        os.makedirs(log_dir, exist_ok=True)
        self.path = os.path.join(log_dir, "%s.calls.jsonl" % name)
        self._f = open(self.path, "a", buffering=1, encoding="utf-8")
        self.ring = collections.deque(maxlen=RING)
        self.seq = 0
        self.counts = collections.Counter()

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def write(self, entry: dict):
        entry.setdefault("time", _now())
        self.ring.append(entry)
        self.counts[entry.get("verdict", "?")] += 1
        try:
            self._f.write(json.dumps(entry, default=str, ensure_ascii=False) + "\n")
        except OSError:
            pass

    def query(self, since: int = 0, service: str = "", operation: str = "", verdict: str = "",
              access_key: str = "", limit: int = 10_000) -> list:
        out = []
        for e in self.ring:
            if e["seq"] <= since:
                continue
            if service and e.get("service") != service and e.get("signing_name") != service:
                continue
            if operation and e.get("operation") != operation:
                continue
            if verdict and not (e.get("verdict") == verdict or e.get("verdict", "").startswith(verdict + ":")):
                continue
            if access_key and e.get("access_key") != access_key:
                continue
            out.append(e)
        return out[-limit:]

    def close(self):
        self._f.close()
