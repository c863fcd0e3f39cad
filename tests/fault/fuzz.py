"""Frame fuzzing against a live node: valid requests of every variant, mutated at the byte level and
at the field level, plus unknown variants and boundary sizes.

A fuzz frame is what goes on a request stream: the 34-byte auth header (aspen.rpc.auth) and the
msgpack body. Most frames carry this connection's correct header, so the body reaches the decoder;
the rest carry a mutated, missing or truncated header (pre-auth garbage), and must be refused with
UNAUTHORIZED before anything is decoded. The oracle for a frame with the right header is the node's
own decoder run locally (`decode_envelope`): a body it rejects is *invalid* and must get an
`INVALID_REQUEST` error and change nothing; a body it accepts is a valid request and may do
whatever that request does. Requests that would change the membership of the one-node cluster
under test (a valid AddLearner/ChangeMembership/PromoteLearner) are not sent: they could take the
test cluster down, which is not a robustness bug; their invalid forms are sent.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import Any

import msgpack

from aspen.api import messages as m
from aspen.api.codec import decode_envelope, encode_request
from aspen.api.errors import AspenError
from aspen.api.limits import MAX_MESSAGE_BYTES
from aspen.rpc.auth import HEADER_BYTES, MAGIC, VERSION
from aspen.rpc.client import DEFAULT_MAX_RESPONSE, RpcConnection
from aspen.rpc.errors import RpcStreamResetError

MEMBERSHIP = {"AddLearner", "ChangeMembership", "PromoteLearner"}
#: Requests that change the state machine when valid.
MUTATING = MEMBERSHIP | {
    "WriteKey",
    "DeleteKey",
    "CompareAndSwapKey",
    "CompareAndDeleteKey",
    "BatchWrite",
    "ConditionalBatchWrite",
    "InitCluster",
    "TriggerSnapshot",
}

ADDR = '{"id": "' + "ab" * 32 + '", "addrs": [{"Ip": "127.0.0.1:1"}]}'

#: One valid instance of every request variant: the seeds every mutation starts from.
BASE_REQUESTS: list[m.Request] = [
    m.GetHealth(),
    m.GetRaftMetrics(),
    m.GetLeader(),
    m.GetNodeInfo(),
    m.GetClusterTicket(),
    m.InitCluster(),
    m.Ping(),
    m.GetClusterState(),
    m.GetMetrics(),
    m.TriggerSnapshot(),
    m.GetStateHash(),
    m.AddLearner(node_id=7, addr=ADDR),
    m.ChangeMembership(members=[1]),
    m.PromoteLearner(learner_id=7, replace_node=1),
    m.ReadKey(key="fz", stale=False),
    m.WriteKey(key="fz", value=b"v"),
    m.DeleteKey(key="fz"),
    m.CompareAndSwapKey(key="fz", expected=b"v", new_value=b"w"),
    m.CompareAndDeleteKey(key="fz", expected=b"w"),
    m.ScanKeys(prefix="f", limit=10, continuation_token="fa", stale=True),
    m.BatchRead(keys=["fz", "fy"]),
    m.BatchWrite(operations=[m.SetOperation(key="fz", value=b"1"), m.DeleteOperation(key="fy")]),
    m.ConditionalBatchWrite(
        conditions=[m.ValueEquals(key="fz", expected=b"1"), m.KeyExists(key="fz"), m.KeyNotExists(key="q")],
        operations=[m.SetOperation(key="fz", value=b"2")],
    ),
]

VARIANTS = [r.type for r in BASE_REQUESTS]

#: Values of every msgpack type, including boundaries of the integer and size limits.
INTERESTING: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    1,
    2**31,
    2**32 - 1,
    2**32,
    2**63 - 1,
    2**64 - 1,
    -(2**63),
    1.5,
    float("nan"),
    float("inf"),
    "",
    "x",
    "k" * 1024,
    "k" * 1025,
    "é" * 600,
    "\x00",
    b"",
    b"\x00\xff",
    b"v" * 1_048_576,
    b"v" * 1_048_577,
    [],
    [1, "a", b"b"],
    {},
    {"type": "Set", "key": "a", "value": b"b"},
    {"type": "Nope"},
    ["k"] * 101,
    [{"type": "Set", "key": f"k{i}", "value": b"v"} for i in range(101)],
]


def random_value(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if roll < 0.5 or depth > 3:
        return rng.choice(INTERESTING)
    if roll < 0.65:
        return rng.randbytes(rng.randrange(0, 64))
    if roll < 0.75:
        return "".join(chr(rng.randrange(0, 0x2FF)) for _ in range(rng.randrange(0, 32)))
    if roll < 0.85:
        return [random_value(rng, depth + 1) for _ in range(rng.randrange(0, 5))]
    if roll < 0.9:
        nested: Any = 1
        for _ in range(rng.randrange(10, 400)):  # msgpack's packer stops at 512; deeper: deep_frame
            nested = [nested]
        return nested
    return {
        str(random_value(rng, depth + 1))[:20]: random_value(rng, depth + 1)
        for _ in range(rng.randrange(0, 4))
    }


def deep_frame(rng: random.Random) -> bytes:
    """An envelope whose request is an array nested thousands deep (built by hand: msgpack's own
    packer refuses such depth). The decoder must refuse it, not blow its stack."""
    depth = rng.randrange(500, 200_000)
    head: bytes = msgpack.packb("v") + msgpack.packb(1)
    nested = rng.choice([b"\x91", b"\x81\xa1k"]) * depth + b"\x01"  # [[[...1]]] or {"k":{"k":...1}}
    return b"\x82" + head + pack("req") + nested


def mutate_fields(rng: random.Random, envelope: dict[str, Any]) -> dict[str, Any]:
    env = dict(envelope)
    req = dict(env.get("req") or {})
    for _ in range(rng.randrange(1, 4)):
        roll = rng.random()
        fields = [k for k in req if k != "type"]
        if roll < 0.35 and fields:
            req[rng.choice(fields)] = random_value(rng)
        elif roll < 0.45 and fields:
            del req[rng.choice(fields)]
        elif roll < 0.55:
            req[rng.choice(["extra", "Key", "value2", ""])] = random_value(rng)
        elif roll < 0.65:
            req["type"] = rng.choice([*VARIANTS, "Unknown", "", "getHealth", "Error", "Pong", "WriteKey\x00"])
        elif roll < 0.7:
            req["type"] = random_value(rng)
        elif roll < 0.78:
            env["v"] = rng.choice([0, 2, -1, "1", 1.0, None, 2**64 - 1])
        elif roll < 0.86:
            env["auth"] = rng.choice([b"", b"\x00" * 32, "x" * 32, None])  # the old envelope field
        elif roll < 0.93:
            env["hops"] = rng.choice([1, 2, -1, True, "0", 2**64 - 1, -(2**63), None])
        else:
            env[rng.choice(["req", "v", "auth"])] = random_value(rng)
    env["req"] = req if env.get("req") is not None or rng.random() < 0.9 else env.get("req")
    return env


#: array32 / map32 / str32 / bin32 headers announcing ~2-4 G items or bytes.
HUGE_HEADERS = [
    b"\xdd\xff\xff\xff\xff",
    b"\xdf\x7f\xff\xff\xff",
    b"\xdb\xff\xff\xff\xf0",
    b"\xc6\x7f\xff\xff\xff",
]


def mutate_bytes(rng: random.Random, frame: bytes) -> bytes:
    data = bytearray(frame)
    for _ in range(rng.randrange(1, 5)):
        roll = rng.random()
        if roll < 0.3 and data:
            i = rng.randrange(len(data))
            data[i] ^= 1 << rng.randrange(8)
        elif roll < 0.5 and data:
            data[rng.randrange(len(data))] = rng.randrange(256)
        elif roll < 0.6 and data:
            del data[rng.randrange(len(data)) :]
        elif roll < 0.7:
            i = rng.randrange(len(data) + 1)
            data[i:i] = rng.randbytes(rng.randrange(1, 16))
        elif roll < 0.8 and data:
            i = rng.randrange(len(data))
            data[i:i] = data[i : i + rng.randrange(1, 32)]
        elif roll < 0.9:
            data += rng.randbytes(rng.randrange(1, 8))
        else:
            # msgpack type bytes that announce huge containers/strings: the decoder must not trust them
            i = rng.randrange(len(data) + 1)
            data[i:i] = rng.choice(
                [
                    b"\xdd\xff\xff\xff\xff",
                    b"\xdf\x7f\xff\xff\xff",
                    b"\xdb\xff\xff\xff\xf0",
                    b"\xc6\x7f\xff\xff\xff",
                ]
            )
    return bytes(data)


def pack(obj: Any) -> bytes:
    data: bytes = msgpack.packb(obj, use_bin_type=True)
    return data


def make_body(rng: random.Random) -> bytes:
    """One fuzz body: a mutated valid request, a random blob, or an edge case."""
    base = rng.choice(BASE_REQUESTS)
    roll = rng.random()
    if roll < 0.45:
        envelope = {"v": 1, "req": base.model_dump()}
        return pack(mutate_fields(rng, envelope))
    if roll < 0.85:
        return mutate_bytes(rng, encode_request(base))
    if roll < 0.93:
        return rng.randbytes(rng.randrange(0, 200))
    if roll < 0.96:
        return deep_frame(rng)
    return pack(random_value(rng))


@dataclass
class Frame:
    """What one request stream carries: `header` (34 bytes when well formed) and `body`."""

    header: bytes
    body: bytes

    @property
    def authentic(self) -> bool:
        return self.header == AUTHENTIC


#: Stands for "this connection's own header": the sender substitutes the real one.
AUTHENTIC = b"<the connection's header>"


def bad_header(rng: random.Random) -> bytes:
    """Pre-auth garbage: a header that must not pass (wrong proof, version, magic, or too short)."""
    roll = rng.random()
    if roll < 0.4:
        return bytes((MAGIC, VERSION)) + rng.randbytes(32)
    if roll < 0.55:
        return bytes((MAGIC, rng.choice([0, 1, 3, 255]))) + rng.randbytes(32)
    if roll < 0.7:
        return bytes((rng.choice([0x80, 0x83, 0x00, 0xFF]), VERSION)) + rng.randbytes(32)
    if roll < 0.85:
        return rng.randbytes(rng.randrange(0, HEADER_BYTES))  # shorter than a header
    return b"\x00" * HEADER_BYTES


def make_frame(rng: random.Random, preauth_share: float = 0.15) -> Frame:
    """One fuzz frame; a `preauth_share` of them have a bad header (and any body)."""
    if rng.random() < preauth_share:
        header = bad_header(rng)
        # A short header and no body is a request shorter than its header.
        return Frame(header, b"" if len(header) < HEADER_BYTES and rng.random() < 0.5 else make_body(rng))
    return Frame(AUTHENTIC, make_body(rng))


@dataclass
class Verdict:
    valid: bool
    variant: str = "Invalid"
    authentic: bool = True


def classify(frame: Frame) -> Verdict:
    if not frame.authentic:
        return Verdict(False, authentic=False)
    try:
        req, _ = decode_envelope(frame.body)
    except AspenError:
        return Verdict(False)
    return Verdict(True, req.type)


def should_send(verdict: Verdict, *, allow_mutating: bool) -> bool:
    if not verdict.valid:
        return True
    if verdict.variant in MEMBERSHIP:
        return False
    return allow_mutating or verdict.variant not in MUTATING


def check_response(raw: bytes, verdict: Verdict) -> m.Response:
    """The response decodes to a valid response; a frame with a bad header gets UNAUTHORIZED, an
    invalid body an INVALID_REQUEST error."""
    frame = msgpack.unpackb(raw, raw=False)
    resp = m.RESPONSE_ADAPTER.validate_python(frame)
    if not verdict.authentic:
        assert isinstance(resp, m.Error) and resp.code == "UNAUTHORIZED", resp
    elif not verdict.valid:
        assert isinstance(resp, m.Error), f"invalid frame answered with {resp!r}"
        assert resp.code == "INVALID_REQUEST", resp
    else:
        assert not (isinstance(resp, m.Error) and resp.code in {"INVALID_REQUEST", "UNAUTHORIZED"}), (
            f"valid {verdict.variant} refused: {resp}"
        )
    return resp


@dataclass
class FuzzStats:
    sent: int = 0
    invalid: int = 0
    resets: int = 0
    skipped: int = 0
    preauth: int = 0
    refused: int = 0
    seconds: float = 0.0
    by_code: dict[str, int] = field(default_factory=dict)


async def send(
    conn: RpcConnection, frame: Frame, verdict: Verdict, stats: FuzzStats, timeout: float = 30.0
) -> None:
    """Send `frame` on `conn` with the header it names (the connection's own when authentic)."""
    stats.sent += 1
    stats.invalid += not verdict.valid
    stats.preauth += not verdict.authentic
    header = conn.header if frame.authentic else frame.header
    sid, future = conn._protocol.send_request(header, frame.body, DEFAULT_MAX_RESPONSE)
    try:
        raw = await asyncio.wait_for(future, timeout)
    except RpcStreamResetError:
        stats.resets += 1  # allowed: the server refused the stream outright
        return
    except TimeoutError:
        conn._protocol.abort(sid)
        raise
    resp = check_response(raw, verdict)
    code = resp.code if isinstance(resp, m.Error) else "ok"
    stats.by_code[code] = stats.by_code.get(code, 0) + 1


def boundary_frames() -> list[Frame]:
    """Sizes at and around the 16 MiB request limit, and empty ones, with and without the header."""
    padding = MAX_MESSAGE_BYTES - len(encode_request(m.Ping()))
    return [
        Frame(AUTHENTIC, b""),
        Frame(AUTHENTIC, b"\x80"),  # empty map
        Frame(AUTHENTIC, b"\xc1"),  # never-used msgpack byte
        Frame(AUTHENTIC, pack({"v": 1, "req": {"type": "Ping"}, "pad": b"x" * (padding - 16)})),
        Frame(AUTHENTIC, b"\x00" * MAX_MESSAGE_BYTES),
        Frame(AUTHENTIC, b"\x00" * (MAX_MESSAGE_BYTES + 1)),
        Frame(b"", b""),
        Frame(b"\x00" * HEADER_BYTES, b"\x90" * (MAX_MESSAGE_BYTES - HEADER_BYTES)),  # pre-auth, maximal
        Frame(bytes((MAGIC, VERSION)) + b"\x00" * 32, b"\xdd" + b"\x90" * (MAX_MESSAGE_BYTES // 2)),
    ]


def now() -> float:
    return time.monotonic()
