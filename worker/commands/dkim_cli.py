"""`herald dkim keygen`: a new DKIM key, written readable by its owner only, and the DNS record to publish for it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

import typer

from foundation import terminal
from foundation.problems import display_path
from foundation.settings import DkimKeyFile, dns_name, load_settings, private_dir
from worker.delivery.dkim_keys import KEY_TYPES, load_key, new_private_key, write_key, zone_line

dkim_app = typer.Typer(help="DKIM keys: make one and get the DNS record to publish.", no_args_is_help=True)
console = terminal.output()
errors = terminal.problems()


def _fail(message: str) -> NoReturn:
    errors.print(message, style="red", markup=False, highlight=False)
    raise typer.Exit(2)


def _say(text: str = "") -> None:
    """A line as it is: a DNS record must never be wrapped where someone copies it from."""
    console.print(text, markup=False, highlight=False, soft_wrap=True)


@dkim_app.command()
def keygen(
    domain: Annotated[str, typer.Option(help="The domain it signs for (d=): your From address's domain, or a parent "
                                             "of it.")],
    selector: Annotated[str, typer.Option(help="The name of this key in DNS (s=), e.g. the year and a letter: 2026a. "
                                               "A new selector for every new key.")],
    algorithm: Annotated[str, typer.Option(help="rsa (2048 bits, what every receiver checks) or ed25519 (RFC 8463, "
                                                "a second signature beside an RSA one).")] = "rsa",
    out: Annotated[Path | None, typer.Option(metavar="FILE", help="Where to write the private key (default: "
                                                                  "DATA_DIR/dkim/DOMAIN.SELECTOR.ALGORITHM.pem).")] = None,
) -> None:
    """Make a DKIM key (mode 0600, never over an existing file) and print the TXT record to publish for it."""
    domain, selector = domain.strip().lower().rstrip("."), selector.strip().lower()
    if not dns_name(domain):
        _fail(f"--domain {domain!r} is not a domain name (write an international one as its A-label, xn--…)")
    if not dns_name(selector):
        _fail(f"--selector {selector!r} is not a DNS label; use letters, digits and hyphens, e.g. 2026a")
    if algorithm not in KEY_TYPES:
        _fail(f"--algorithm {algorithm!r}: use rsa or ed25519")
    path = out or private_dir(private_dir(load_settings().data_dir) / "dkim") / f"{domain}.{selector}.{algorithm}.pem"
    try:
        write_key(new_private_key(algorithm), path)
    except FileExistsError:
        _fail(f"{display_path(path)} exists already; a key in use must not be replaced. Choose a new selector "
              "(and --out), publish its record, then list it first in HERALD_DKIM_KEYS.")
    except OSError as error:
        _fail(f"cannot write {display_path(path)}: {error.strerror}; create its folder, or name a writable file with --out")
    key = load_key(DkimKeyFile(domain, selector, path.resolve()))
    _say(f"Wrote the {algorithm} key for {domain}, selector {selector}, to {display_path(path)} (readable by you only).")
    _say(f"Publish this TXT record at {key.record_name} (one record; DNS joins its quoted strings):")
    _say()
    _say(zone_line(key))
    _say()
    _say(f"Then list it first in HERALD_DKIM_KEYS (newest first): {domain}:{selector}:{path.resolve()}")
    _say("and run `herald doctor`: it checks that the published record matches this key.")
