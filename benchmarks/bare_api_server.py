"""The bare cost of an accepted disclosure, as a server: bench_api's baseline, run in one process.

POST /v1/disclosures reads and parses the JSON body, seals its record (ES256 signature,
ECDH-ES+A256KW encryption, as `gateway.sealing.seal` does for the gateway) and answers 202 with
an id, on uvloop: aiohttp plus the seal, with no authentication, policy, minimisation, database
or audit. bench_api measures it with the same load generator in the same run, so the gateway's
figures can be read as a share of what this machine can do at all today.

    python benchmarks/bare_api_server.py PORT
"""

from __future__ import annotations

import json
import sys
import tempfile
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import uvloop
from aiohttp import web

from gateway.keys import CouncilKeyring
from gateway.partner_keys import PartnerKey, generate_partner_keys, public_jwk
from gateway.sealing import EnvelopeAgreement, EnvelopeClaims, seal

PARTNER = "bare-partner"


def app() -> web.Application:
    """The one route, with a council signing key and a partner key made for this run."""
    now = datetime.now(UTC)
    keyring = CouncilKeyring(Path(tempfile.mkdtemp(prefix="gatehouse-bare-")))
    keyring.generate("ES256", now - timedelta(minutes=1))
    enc, _ = generate_partner_keys("ec")
    recipient = PartnerKey.from_jwk(PARTNER, public_jwk(enc), use="enc")

    async def accept(request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        at = datetime.now(UTC)
        claims = EnvelopeClaims(
            iss="medway-council", aud=PARTNER, jti=str(uuid.uuid4()), iat=at,
            agreement=EnvelopeAgreement(body["agreement"], 1), purpose=body["purpose"],
            subject=body["subject"], data=body["record"], retain_until=date(2030, 1, 1),
            onward_sharing="prohibited",
        )  # fmt: skip
        sealed = seal(claims, keyring.active_signer(at), recipient)
        answer = {"id": claims.jti, "status": "queued", "bytes": len(sealed.body)}
        return web.Response(status=202, body=json.dumps(answer), content_type="application/json")

    async def healthz(_request: web.Request) -> web.Response:
        return web.Response(text="ok")

    application = web.Application()
    application.router.add_post("/v1/disclosures", accept)
    application.router.add_get("/healthz", healthz)
    return application


if __name__ == "__main__":
    web.run_app(
        app(), host="127.0.0.1", port=int(sys.argv[1]), print=None, loop=uvloop.new_event_loop()
    )
