"""ACKs ride on our own packets instead of going out alone.

aioquic writes an ACK frame only once the ACK is due: its delay (1 ms) after the first unacknowledged
packet. Until then it does not piggyback one on the packets it sends, so in request/response traffic
each side answers almost every packet of the other with an ACK-only datagram of its own, 1 ms later,
from a timer: one more datagram to build, encrypt and send on one side, and to receive, decrypt and
process on the other, per request.
RFC 9000 §13.2.1 allows an ACK to be sent at any time; sending it with stream data we are about to
transmit anyway is free.

The other way round, a server that has just received a request it is still answering (a replicated
write takes longer than 1 ms) would send the ACK for it alone, and the response a moment later
with the same ACK again. `defer_ack` lets it hold the ACK while an answer is on its way, within the
`max_ack_delay` that aioquic advertises (25 ms), so the peer's loss detection is not disturbed.
"""

from __future__ import annotations

from typing import Any

from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.tls import Epoch

#: How long a server may hold the ACK for a request whose response is on its way. Below the 25 ms
#: `max_ack_delay` aioquic advertises, which the client's loss detection allows for.
RESPONSE_ACK_DELAY = 0.010


class PiggybackAcks(QuicConnectionProtocol):
    """Mixin for our QUIC protocols: every transmit we ask for carries the pending ACK."""

    #: The due time `defer_ack` last gave the pending ACK: it is held once, never pushed on again.
    _held_ack_at: float | None = None

    def defer_ack(self, delay: float) -> None:
        """Hold a pending ACK until `delay` from now (or until a transmit we ask for sends it),
        once: a pending ACK that was already held stays due when it is."""
        space = self._app_space()
        if space is None or space.ack_at is None or space.ack_at == self._held_ack_at:
            return
        space.ack_at = self._held_ack_at = max(space.ack_at, self._loop.time() + delay)

    def _transmit_soon(self) -> None:
        space = self._app_space()
        if space is not None and space.ack_at is not None:
            space.ack_at = 0.0  # due now: the next packet written includes it
        super()._transmit_soon()

    def _app_space(self) -> Any:
        """aioquic's 1-RTT packet space (whose `ack_at` says when the pending ACK is due), if any.
        `_spaces` is aioquic's; if it ever goes away we lose the saving, not correctness."""
        spaces = getattr(self._quic, "_spaces", None)
        return spaces.get(Epoch.ONE_RTT) if spaces else None
