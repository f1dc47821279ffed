"""DKIM per message: dkimpy's signer against Herald's (its relaxed canonicalisation and `cryptography`'s RSA).

    .venv/bin/python bench/dkim_bench.py [--messages 300] [--runs 5] [--json PATH]

Signs the messages the engine sends most (the invitation the end-to-end benchmark sends, each edition) and the
largest newsletter, built as the worker builds them (MIME skeleton, a sample recipient), with a fresh 2048-bit
RSA key and an Ed25519 key. Per message, the median (min–max) of --runs runs of --messages signatures each:

- dkimpy 1.1 `dkim.sign`, rsa-sha256, relaxed/relaxed, the same header list (fewer messages: it is slow);
- Herald's DkimSigner with the RSA key, and with both keys (two signatures);
- its parts: the body's relaxed canonicalisation and SHA-256, and one RSA signature of the header hash input.

Every signature made is checked once with dkimpy's verifier first, so a fast wrong signer cannot win.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import dkim as dkimpy
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from measure import Figures, machine
from rich.console import Console

from foundation.settings import PROJECT_ROOT, DkimKeyFile, load_settings
from worker.authoring.content import load_item
from worker.delivery.dkim import SIGNED_HEADERS, DkimSigner, relaxed_body
from worker.delivery.dkim_keys import SigningKey, load_key, new_private_key, write_key
from worker.delivery.mime import Skeleton, message_id
from worker.events.event_calendar import preview_calendar
from worker.rendering.render import Renderer, sample_recipient

MESSAGES = (("events/eui-online-qa-session", "invitation", "ro"), ("events/eui-online-qa-session", "invitation", "both"),
            ("newsletters/2027-01-uia-transfer-networks", "newsletter", "both"))
DKIMPY_SHARE = 10  # dkimpy signs 1/10 as many messages per run
console = Console(width=None if sys.stdout.isatty() else 150)


def built(path: str, message: str, edition: str) -> bytes:
    settings = load_settings()
    item = load_item(PROJECT_ROOT / "content" / path)
    compiled = Renderer(settings).compile(item, edition, message)
    skeleton = Skeleton.prepare(compiled, settings, feedback_id=f"bench:{message}:{edition}",
                                calendar=preview_calendar(item, compiled.language, message, settings))
    return skeleton.build(sample_recipient(settings), message_id=message_id(skeleton.domain), sent_at=datetime.now(UTC))


def keys(folder: Path, domain: str) -> dict[str, SigningKey]:
    made = {}
    for key_type in ("rsa", "ed25519"):
        write_key(new_private_key(key_type), folder / f"{key_type}.pem")
        made[key_type] = load_key(DkimKeyFile(domain, f"bench{key_type}", folder / f"{key_type}.pem"))
    return made


def per_message(work: Callable[[], object], count: int) -> float:
    start = time.perf_counter()
    for _ in range(count):
        work()
    return (time.perf_counter() - start) / count * 1e6


def verified(signed: bytes, signing: list[SigningKey]) -> None:
    records = {f"{key.record_name}.".encode(): key.record().encode() for key in signing}
    verifier = dkimpy.DKIM(signed)
    for index in range(len(signing)):
        if not verifier.verify(idx=index, dnsfunc=lambda name, timeout=5: records[name]):
            raise RuntimeError(f"signature {index} does not verify")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=300, help="signatures per run and message")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    figures = Figures()
    domain = load_settings().org_email.rpartition("@")[2]
    with tempfile.TemporaryDirectory(prefix="herald-dkim-") as tmp:
        made = keys(Path(tmp), domain)
    rsa_only, both = DkimSigner([made["rsa"]]), DkimSigner([made["rsa"], made["ed25519"]])
    rsa_pem = made["rsa"].private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                serialization.NoEncryption())
    selector, include = made["rsa"].selector.encode(), [header.encode() for header in SIGNED_HEADERS]
    for path, message, edition in MESSAGES:
        eml = built(path, message, edition)
        name = f"{message} {edition} ({len(eml) / 1024:.0f} KiB)"
        reference = dkimpy.sign(eml, selector, domain.encode(), rsa_pem, canonicalize=(b"relaxed", b"relaxed"),
                                include_headers=include)
        verified(reference + eml, [made["rsa"]])
        verified(rsa_only.sign(eml), [made["rsa"]])
        verified(both.sign(eml), [made["rsa"], made["ed25519"]])
        body = eml.partition(b"\r\n\r\n")[2]
        header_input = eml[:600]
        for _ in range(args.runs):
            figures.add(f"{name}: dkimpy, rsa-sha256", per_message(
                lambda: dkimpy.sign(eml, selector, domain.encode(), rsa_pem, canonicalize=(b"relaxed", b"relaxed"),
                                    include_headers=include),
                max(1, args.messages // DKIMPY_SHARE)), "µs")
            figures.add(f"{name}: Herald, rsa-sha256", per_message(lambda: rsa_only.sign(eml), args.messages), "µs")
            figures.add(f"{name}: Herald, rsa-sha256 + ed25519-sha256", per_message(lambda: both.sign(eml),
                                                                                    args.messages), "µs")
            figures.add(f"{name}: of which body canonicalisation + SHA-256", per_message(
                lambda: hashlib.sha256(relaxed_body(body)).digest(), args.messages), "µs")
        console.log(f"{name}: done")
    for _ in range(args.runs):
        figures.add("one RSA-2048 signature (cryptography, OpenSSL)", per_message(
            lambda: made["rsa"].private.sign(header_input, padding.PKCS1v15(), hashes.SHA256()), args.messages), "µs")
        figures.add("one Ed25519 signature (cryptography, OpenSSL)", per_message(
            lambda: made["ed25519"].private.sign(hashlib.sha256(header_input).digest()), args.messages), "µs")
    console.print(machine())
    console.print(figures.table(f"DKIM signing per message: median (min–max) of {args.runs} runs", "per message"))
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "command": sys.argv, "samples": figures.samples},
                                        indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
