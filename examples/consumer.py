"""A downstream consumer: wait for `job.completed` on the bus and download the film.

    python examples/consumer.py --nats-url nats://127.0.0.1:4222 --out films/ [--prefix reelforge] [--job J] [--count 1]

Subscribes with nats-py to `{prefix}.job.completed` through a JetStream ordered consumer (it reads
the stream from its start, so a job completed before the consumer started is seen too), downloads
`film_url` to `OUT/{job}.mp4` and prints one JSON line per film. A film delivered in parts
(`film_parts` > 1: `film_url` is the manifest) is joined back and checked against its SHA-256.
Only the event's documented fields are used (see `reelforge asyncapi`).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import sys
import urllib.request
from pathlib import Path

import nats
from nats.js.api import DeliverPolicy


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=300) as response:  # noqa: S310 - URLs the uploader published
        return response.read()


def download_film(event: dict, out: Path) -> Path:
    target = out / f"{event['job_id']}.mp4"
    if event.get("film_parts", 1) > 1:
        manifest = json.loads(fetch(event["film_url"]))
        data = b"".join(fetch(part["url"]) for part in sorted(manifest["parts"], key=lambda p: p["index"]))
        if hashlib.sha256(data).hexdigest() != manifest["sha256"]:
            raise ValueError(f"joined film of {event['job_id']} does not match its manifest")
    else:
        data = fetch(event["film_url"])
    target.write_bytes(data)
    return target


async def consume(nats_url: str, prefix: str, out: Path, job: str | None, count: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        sub = await js.subscribe(f"{prefix}.job.completed", ordered_consumer=True, deliver_policy=DeliverPolicy.ALL)
        done = 0
        async for msg in sub.messages:
            event = json.loads(msg.data)
            if job and event["job_id"] != job:
                continue
            path = await asyncio.to_thread(download_film, event, out)
            print(json.dumps({"job_id": event["job_id"], "film": str(path), "bytes": path.stat().st_size}), flush=True)
            done += 1
            if done >= count:
                return
    finally:
        await nc.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nats-url", default="nats://127.0.0.1:4222")
    parser.add_argument("--prefix", default="reelforge", help="REELFORGE_SUBJECT_PREFIX of the installation")
    parser.add_argument("--out", type=Path, default=Path("films"))
    parser.add_argument("--job", help="only this job")
    parser.add_argument("--count", type=int, default=1, help="exit after this many films (0: run forever)")
    args = parser.parse_args()
    try:
        asyncio.run(consume(args.nats_url, args.prefix, args.out, args.job, args.count or sys.maxsize))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
