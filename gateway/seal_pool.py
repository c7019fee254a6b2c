"""Sealing in a worker process, so the event loop's core is not the one that signs and encrypts.

An API process is CPU-bound in one Python thread, and a seal (ES256 signature and ECDH-ES
encryption, ~300 µs) is a third of each accepted request; the GIL keeps a thread from doing it
alongside. A worker process can: it seals while the loop parses and records the next requests.

The worker reads the council's signing key from the keys directory itself (no key crosses the
pipe); the minimised claims reach it over a socket pair between two processes of this service
and are written nowhere (`worker_link`). Each envelope comes back as soon as it is sealed (a
request does not wait for the rest of its batch). If the worker fails an item, dies, or has
not answered within two seconds (wedged), the item is sealed here instead, so a caller sees
exactly the result or the error of `gateway.sealing.seal`.
"""

from __future__ import annotations

from datetime import datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from gateway import worker_link
from gateway.keys import CouncilKeyring
from gateway.partner_keys import PartnerKey
from gateway.sealing import EnvelopeClaims, SealedEnvelope, check_recipient, seal, seal_jwt

# Plain data both ways (pickled several times faster than the dataclasses): the claims set, its
# iat (which council key signs), the partner key's kid and JWK; the envelope's four fields back.
Job = tuple[dict[str, Any], datetime, str, dict[str, Any]]
AnswerFields = tuple[bytes, str, str, str]
WORKER_TIMEOUT_SECONDS = 2.0  # a seal takes ~0.3 ms; a worker this late is wedged


def _work(connection: Connection, keys_dir: str) -> None:
    """The worker: answer each job of a batch, in order, as soon as it is sealed (None: failed)."""
    keyring = CouncilKeyring(Path(keys_dir))
    worker_link.say_ready(connection)  # imported and holding the keyring
    while True:
        try:
            jobs: list[Job] = worker_link.receive(connection)
        except EOFError:
            return  # the service stopped (or died): nothing more to seal
        for jwt, iat, kid, jwk in jobs:
            answer: AnswerFields | None
            try:
                sealed = seal_jwt(jwt, keyring.active_signer(iat), kid, jwk)
                answer = (sealed.body, sealed.digest, sealed.signing_kid, sealed.encryption_kid)
            except Exception:  # the parent seals it again in-line, and raises the real error
                answer = None
            worker_link.answer(connection, [answer])


class SealPool:
    """`seal` as in `gateway.sealing`, run in a worker process; same results, same errors."""

    def __init__(self, keys_dir: Path) -> None:
        self._keys_dir = keys_dir
        self._keyring = CouncilKeyring(keys_dir)  # for sealing in-line when the worker cannot
        self._pool: worker_link.WorkerPool[Job, AnswerFields] | None = None

    @property
    def ready(self) -> bool:
        """The worker has started and answers; until then, seals are in-line."""
        return self._pool is not None and self._pool.ready

    @property
    def _process(self) -> Any:
        return None if self._pool is None else self._pool.process

    async def start(self) -> None:
        """Spawn the worker and connect to it."""
        self._pool = worker_link.WorkerPool(
            _work, (str(self._keys_dir),), name="gatehouse-sealer", timeout=WORKER_TIMEOUT_SECONDS
        )
        await self._pool.start()

    async def seal(self, claims: EnvelopeClaims, recipient: PartnerKey) -> SealedEnvelope:
        """Sign with the active council key and encrypt for `recipient`."""
        if self._pool is not None and self._pool.usable:
            check_recipient(claims, recipient)  # refused here, as `seal` would
            job = (claims.to_jwt(), claims.iat, recipient.kid, dict(recipient.jwk))
            answer = await self._pool.submit(job)
            if answer is not None:
                return SealedEnvelope(*answer)
        # No worker, or it failed this one: here, for the real error.
        return seal(claims, self._keyring.active_signer(claims.iat), recipient)

    async def close(self) -> None:
        """Stop the worker (seals still waiting are finished in-line)."""
        if self._pool is not None:
            await self._pool.close()
