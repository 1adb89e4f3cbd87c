"""The README's FastAPI webhook receiver runs as written and tells genuine deliveries from forgeries."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from pressrun.webhooks import sign

README = Path(__file__).resolve().parents[2] / "README.md"


async def test_readme_fastapi_receiver_accepts_signed_and_refuses_forged_deliveries():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    [source] = [b for b in blocks if b.startswith("# FastAPI")]
    namespace: dict = {}
    exec(compile(source.replace("...  #", "pass  #"), "README.md", "exec"), namespace)  # noqa: S102
    secret = namespace["SECRET"]
    transport = httpx.ASGITransport(app=namespace["app"])
    async with httpx.AsyncClient(transport=transport, base_url="http://receiver.test") as client:
        await check(client, secret)


async def check(client: httpx.AsyncClient, secret: str) -> None:
    body = b'{"event":"batch.completed","data":{}}'
    genuine = await client.post("/hooks/pressrun", content=body, headers={
        "X-Pressrun-Signature": sign(body, secret), "X-Pressrun-Delivery-Id": "whdel_1",
        "Content-Type": "application/json"})
    assert genuine.status_code == 200, genuine.text
    forged = await client.post("/hooks/pressrun", content=body, headers={"X-Pressrun-Signature": sign(body, "whsec_other")})
    assert forged.status_code == 400 and "does not match" in forged.text
