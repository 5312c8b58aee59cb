"""The proxy's knobs: mode, seed, time scale, fault rate, durations, exempt access keys, IAM."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Optional

MODES = ("validate", "test", "off")

# Real AWS durations in seconds, [lo, hi]; each is multiplied by the time scale (except the
# ones in UNSCALED).  Sources: docs/realism.md.
DURATIONS = {
    "iam_propagation": (5.0, 12.0),
    "lambda_pending": (1.0, 5.0),
    "lambda_pending_vpc": (40.0, 80.0),
    "lambda_update": (1.0, 5.0),
    "lambda_update_vpc": (20.0, 60.0),
    "s3_read_after_create": (1.0, 4.0),
    "ec2_read_after_create": (1.0, 4.0),
    "s3_conflicting_writes": (0.15, 0.4),
    "cloudfront_deploy": (200.0, 300.0),
    "rds_creating": (300.0, 420.0),
    "rds_modifying": (30.0, 90.0),
    "rds_deleting": (240.0, 360.0),
    "sqs_queue_deleted": (60.0, 60.0),
    "lambda_eni_release": (1200.0, 2700.0),
}
UNSCALED = {"s3_conflicting_writes"}

BEHAVIOURS = (
    "iam_propagation",
    "lambda_pending",
    "lambda_update",
    "read_after_create",
    "s3_conflicting_writes",
    "cloudfront_deploy",
    "rds",
    "lambda_eni",
    "sqs_deleted_recently",
    "ec2_client_tokens",
)

# Fault kinds and their weights (a throttling error 40%, HTTP 500 20%, HTTP 503 20%, dropped connection 20%)
FAULT_KINDS = {"throttle": 0.4, "500": 0.2, "503": 0.2, "drop": 0.2}

MODE_DEFAULTS = {
    "test": {"time_scale": 0.02, "fault_rate": 0.05},
    "validate": {"time_scale": 1.0, "fault_rate": 0.0},
    "off": {"time_scale": 1.0, "fault_rate": 0.0},
}


def parse_scale(spec: str) -> tuple:
    """NAME=F -> (name, factor)."""
    name, sep, factor = spec.partition("=")
    name = name.strip()
    if not sep or name not in DURATIONS:
        raise ValueError("expected NAME=F with NAME one of %s, got %r" % (", ".join(DURATIONS), spec))
    return name, float(factor)


def parse_duration(spec: str) -> tuple:
    """NAME=LO[-HI] -> (name, (lo, hi))."""
    name, sep, rng = spec.partition("=")
    name = name.strip()
    if not sep or name not in DURATIONS:
        raise ValueError("expected NAME=LO[-HI] with NAME one of %s, got %r" % (", ".join(DURATIONS), spec))
    lo, _, hi = rng.partition("-")
    lo_f = float(lo)
    hi_f = float(hi) if hi else lo_f
    if lo_f < 0 or hi_f < lo_f:
        raise ValueError("bad range in %r" % spec)
    return name, (lo_f, hi_f)


@dataclass
class Config:
    mode: str = "validate"
    seed: Optional[int] = None
    time_scale: Optional[float] = None  # None: the mode's default
    fault_rate: Optional[float] = None  # None: the mode's default
    durations: dict = field(default_factory=lambda: dict(DURATIONS))
    exempt_access_keys: set = field(default_factory=set)
    behaviours: set = field(default_factory=lambda: set(BEHAVIOURS))
    fault_kinds: set = field(default_factory=lambda: set(FAULT_KINDS))
    # Zones of the emulated account that offer no interface endpoint service and no DB
    # instance class (as some zones of real accounts lack newer services): see account.py.
    constrained_zones: set = field(default_factory=set)
    # Per-duration scale factors that replace the time scale for that duration (a test may
    # replay IAM propagation at half its real length and RDS at a fiftieth).
    scales: dict = field(default_factory=dict)
    # IAM simulated on every call a Lambda function makes (iam.py); on in validate and test modes.
    iam: bool = True
    # The node binary that runs the IAM simulator (tests/realism/iam/simulate.mjs).
    iam_node: str = "node"
    # The proxy answers MediaConvert itself (mediaconvert.py); None: when the upstream is ministack.
    mediaconvert: Optional[bool] = None
    # Lambda's concurrency quota of the emulated account and region (AWS's default 1000), and
    # how much of it AWS keeps unreserved (100): see account.py.
    lambda_concurrency_limit: int = 1000
    lambda_min_unreserved: int = 100

    def __post_init__(self):
        if self.seed is None:
            self.seed = random.SystemRandom().randrange(1, 2 ** 31)
        self.rng = random.Random(self.seed)
        self.check()

    def check(self):
        if self.mode not in MODES:
            raise ValueError("mode must be one of %s" % ", ".join(MODES))
        if self.time_scale is not None and self.time_scale < 0:
            raise ValueError("time_scale must be >= 0")
        if self.fault_rate is not None and not 0 <= self.fault_rate <= 1:
            raise ValueError("fault_rate must be within [0, 1]")
        for name, factor in self.scales.items():
            if name not in DURATIONS or factor < 0:
                raise ValueError("scales: %r must name a duration (%s) and be >= 0" % (name, ", ".join(DURATIONS)))
        unknown = set(self.behaviours) - set(BEHAVIOURS)
        if unknown:
            raise ValueError("unknown behaviours: %s" % ", ".join(sorted(unknown)))
        unknown = set(self.fault_kinds) - set(FAULT_KINDS)
        if unknown or not self.fault_kinds:
            raise ValueError("fault_kinds must be a non-empty subset of %s" % ", ".join(FAULT_KINDS))
        if self.lambda_concurrency_limit < 1 or self.lambda_min_unreserved < 0:
            raise ValueError("lambda_concurrency_limit must be >= 1 and lambda_min_unreserved >= 0")

    @property
    def effective_time_scale(self) -> float:
        return self.time_scale if self.time_scale is not None else MODE_DEFAULTS[self.mode]["time_scale"]

    @property
    def effective_fault_rate(self) -> float:
        if self.mode != "test":
            return 0.0
        return self.fault_rate if self.fault_rate is not None else MODE_DEFAULTS[self.mode]["fault_rate"]

    @property
    def timing(self) -> bool:
        return self.mode == "test"

    @property
    def validating(self) -> bool:
        return self.mode in ("validate", "test")

    def enabled(self, behaviour: str) -> bool:
        return self.timing and behaviour in self.behaviours

    def draw(self, name: str) -> float:
        """A duration in (scaled) wall-clock seconds, drawn from the seeded RNG."""
        lo, hi = self.durations[name]
        d = self.rng.uniform(lo, hi)
        if name in self.scales:
            d *= self.scales[name]
        elif name not in UNSCALED:
            d *= self.effective_time_scale
        return d

    def draw_fault_kind(self) -> str:
        kinds = [k for k in FAULT_KINDS if k in self.fault_kinds]
        total = sum(FAULT_KINDS[k] for k in kinds)
        r = self.rng.random() * total
        for k in kinds:
            r -= FAULT_KINDS[k]
            if r < 0:
                return k
        return kinds[-1]

    def reseed(self, seed: int):
        self.seed = seed
        self.rng = random.Random(seed)

    def to_json(self) -> dict:
        return {
            "mode": self.mode,
            "seed": self.seed,
            "time_scale": self.effective_time_scale,
            "fault_rate": self.effective_fault_rate if self.mode == "test" else (
                self.fault_rate if self.fault_rate is not None else MODE_DEFAULTS["test"]["fault_rate"]),
            "time_scale_set": self.time_scale,
            "fault_rate_set": self.fault_rate,
            "durations": {k: list(v) for k, v in self.durations.items()},
            "unscaled_durations": sorted(UNSCALED),
            "exempt_access_keys": sorted(self.exempt_access_keys),
            "behaviours": sorted(self.behaviours),
            "fault_kinds": [k for k in FAULT_KINDS if k in self.fault_kinds],
            "constrained_zones": sorted(self.constrained_zones),
            "scales": dict(self.scales),
            "iam": self.iam,
            "iam_node": self.iam_node,
            "mediaconvert": self.mediaconvert,
            "lambda_concurrency_limit": self.lambda_concurrency_limit,
            "lambda_min_unreserved": self.lambda_min_unreserved,
        }

    def update(self, doc: dict):
        """A partial update (PUT /_realism/config); all or nothing."""
        new = Config(mode=self.mode, seed=self.seed, time_scale=self.time_scale, fault_rate=self.fault_rate,
                     durations=dict(self.durations), exempt_access_keys=set(self.exempt_access_keys),
                     behaviours=set(self.behaviours), fault_kinds=set(self.fault_kinds),
                     constrained_zones=set(self.constrained_zones), scales=dict(self.scales), iam=self.iam,
                     iam_node=self.iam_node, mediaconvert=self.mediaconvert,
                     lambda_concurrency_limit=self.lambda_concurrency_limit,
                     lambda_min_unreserved=self.lambda_min_unreserved)
        known = {"mode", "seed", "time_scale", "fault_rate", "durations", "exempt_access_keys", "behaviours",
                 "fault_kinds", "constrained_zones", "scales", "iam", "iam_node", "mediaconvert",
                 "lambda_concurrency_limit", "lambda_min_unreserved"}
        unknown = set(doc) - known
        if unknown:
            raise ValueError("unknown config keys: %s" % ", ".join(sorted(unknown)))
        if "mode" in doc:
            new.mode = doc["mode"]
        if "time_scale" in doc:
            new.time_scale = None if doc["time_scale"] is None else float(doc["time_scale"])
        if "fault_rate" in doc:
            new.fault_rate = None if doc["fault_rate"] is None else float(doc["fault_rate"])
        if "durations" in doc:
            for name, rng in (doc["durations"] or {}).items():
                if name not in DURATIONS:
                    raise ValueError("unknown duration %r" % name)
                if isinstance(rng, (int, float)):
                    lo = hi = float(rng)
                elif isinstance(rng, str):
                    _, (lo, hi) = parse_duration("%s=%s" % (name, rng))
                else:
                    lo, hi = float(rng[0]), float(rng[-1])
                if lo < 0 or hi < lo:
                    raise ValueError("bad range for %s" % name)
                new.durations[name] = (lo, hi)
        if "exempt_access_keys" in doc:
            new.exempt_access_keys = set(doc["exempt_access_keys"] or [])
        if "behaviours" in doc:
            b = doc["behaviours"]
            new.behaviours = set(BEHAVIOURS) if b in (None, "all") else set(b)
        if "fault_kinds" in doc:
            k = doc["fault_kinds"]
            new.fault_kinds = set(FAULT_KINDS) if k in (None, "all") else set(k)
        if "constrained_zones" in doc:
            new.constrained_zones = set(doc["constrained_zones"] or [])
        if "scales" in doc:
            new.scales = {k: float(v) for k, v in (doc["scales"] or {}).items()}
        if "iam" in doc:
            if not isinstance(doc["iam"], bool):
                raise ValueError("iam must be true or false")
            new.iam = doc["iam"]
        if "iam_node" in doc:
            new.iam_node = str(doc["iam_node"] or "node")
        if "mediaconvert" in doc:
            if doc["mediaconvert"] is not None and not isinstance(doc["mediaconvert"], bool):
                raise ValueError("mediaconvert must be true, false or null (auto)")
            new.mediaconvert = doc["mediaconvert"]
        for key in ("lambda_concurrency_limit", "lambda_min_unreserved"):
            if key in doc:
                setattr(new, key, int(doc[key]))
        new.check()
        self.iam, self.iam_node, self.mediaconvert = new.iam, new.iam_node, new.mediaconvert
        self.lambda_concurrency_limit = new.lambda_concurrency_limit
        self.lambda_min_unreserved = new.lambda_min_unreserved
        self.constrained_zones = new.constrained_zones
        self.scales = new.scales
        self.mode, self.time_scale, self.fault_rate = new.mode, new.time_scale, new.fault_rate
        self.durations, self.exempt_access_keys, self.behaviours = new.durations, new.exempt_access_keys, new.behaviours
        self.fault_kinds = new.fault_kinds
        if "seed" in doc and doc["seed"] is not None:
            self.reseed(int(doc["seed"]))

    def banner(self) -> str:
        return "mode=%s seed=%s time_scale=%g fault_rate=%g iam=%s" % (
            self.mode, self.seed, self.effective_time_scale, self.effective_fault_rate,
            "on" if self.iam and self.validating else "off")
