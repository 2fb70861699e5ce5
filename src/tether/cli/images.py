"""Image verbs: import, load, ls, rm (and the top-level images/import/load/rmi)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Any, BinaryIO

import click

from tether.cli.util import (
    UsageFailure,
    api_errors,
    client,
    fail,
    filters_query,
)
from tether.cli.views import IMAGE_HEADERS, image_filters, image_rows, list_images, split_reference
from tether.client import APIError

__all__ = ["IMAGE_HEADERS", "image_rows", "split_reference"]

CONTEXT = {"help_option_names": ["--help"]}


def print_json_messages(lines: Iterator[bytes]) -> None:
    """Show a JSON message stream (``status``/``stream``/``error``) like docker."""
    for raw in lines:
        raw = raw.strip()
        if not raw:
            continue
        try:
            msg = json.loads(raw)
        except ValueError:
            click.echo(raw.decode(errors="replace"))
            continue
        if msg.get("error"):
            fail(str(msg["error"]))
        if "stream" in msg:
            click.echo(msg["stream"], nl=False)
        elif "status" in msg:
            click.echo(msg["status"] + (f" {msg['progress']}" if msg.get("progress") else ""))


def _open_source(path: str) -> BinaryIO:
    if path == "-":
        return sys.stdin.buffer
    try:
        return open(path, "rb")
    except OSError as e:
        raise UsageFailure(f"open {path}: {e.strerror.lower() if e.strerror else e}") from None


def import_query(
    source: str, reference: str, changes: list[str], message: str, platform: str
) -> dict[str, Any]:
    repo, tag = split_reference(reference) if reference else ("", "")
    from_src = source if "://" in source else "-"
    return {
        "fromSrc": from_src,
        "repo": repo or None,
        "tag": tag or None,
        "message": message or None,
        "platform": platform or None,
        "changes": list(changes) or None,
    }


@click.command("import", context_settings=CONTEXT)
@click.option(
    "-c", "--change", multiple=True, help="Apply Dockerfile instruction to the created image"
)
@click.option("-m", "--message", default="", help="Set commit message for imported image")
@click.option("--platform", default="", help="Set platform if server is multi-platform capable")
@click.argument("source")
@click.argument("reference", required=False, default="")
@api_errors
def import_(
    change: tuple[str, ...], message: str, platform: str, source: str, reference: str
) -> None:
    """Import the contents from a tarball to create a filesystem image"""
    q = import_query(source, reference, list(change), message, platform)
    body = None if q["fromSrc"] != "-" else _open_source(source)
    resp = client().stream(
        "POST",
        "/images/create",
        q,
        data=body,
        headers={"Content-Type": "application/x-tar"} if body is not None else None,
    )
    try:
        print_json_messages(iter(resp.readline, b""))
    finally:
        resp.close()


@click.command("load", context_settings=CONTEXT)
@click.option(
    "-i", "--input", "input_", default="", help="Read from tar archive file, instead of STDIN"
)
@click.option("-q", "--quiet", is_flag=True, help="Suppress the load output")
@api_errors
def load(input_: str, quiet: bool) -> None:
    """Load an image from a tar archive or STDIN"""
    if not input_ and sys.stdin.isatty():
        fail("requested load from stdin, but stdin is empty")
    body = _open_source(input_ or "-")
    resp = client().stream(
        "POST",
        "/images/load",
        {"quiet": quiet or None},
        data=body,
        headers={"Content-Type": "application/x-tar"},
    )
    try:
        print_json_messages(iter(resp.readline, b""))
    finally:
        resp.close()


@click.command("ls", context_settings=CONTEXT)
@click.option("-a", "--all", "all_", is_flag=True, help="Show all images")
@click.option(
    "-f", "--filter", "filters", multiple=True, help="Filter output based on conditions provided"
)
@click.option("--format", "fmt", default="", help="Format output using a custom template")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output")
@click.option("-q", "--quiet", is_flag=True, help="Only show image IDs")
@click.argument("repository", required=False)
@api_errors
def ls(
    all_: bool,
    filters: tuple[str, ...],
    fmt: str,
    no_trunc: bool,
    quiet: bool,
    repository: str | None,
) -> None:
    """List images"""
    flt = filters_query(image_filters(list(filters), repository))
    click.echo(list_images(client(), all_, flt, fmt, no_trunc, quiet), nl=False)


@click.command("rm", context_settings=CONTEXT)
@click.option("-f", "--force", is_flag=True, help="Force removal of the image")
@click.option("--no-prune", is_flag=True, help="Do not delete untagged parents")
@click.argument("images", nargs=-1, required=True)
@api_errors
def rm(force: bool, no_prune: bool, images: tuple[str, ...]) -> None:
    """Remove one or more images"""
    c = client()
    errors: list[str] = []
    for name in images:
        try:
            items = c.delete(
                f"/images/{name}", {"force": force or None, "noprune": no_prune or None}
            )
        except APIError as e:
            errors.append(str(e))
            continue
        for item in items or []:
            if item.get("Untagged"):
                click.echo(f"Untagged: {item['Untagged']}")
            if item.get("Deleted"):
                click.echo(f"Deleted: {item['Deleted']}")
    if errors:
        fail("\n".join(errors))


@click.command("inspect", context_settings=CONTEXT)
@click.option("-f", "--format", "fmt", default="", help="Format output using a custom template")
@click.argument("images", nargs=-1, required=True)
@api_errors
def inspect(fmt: str, images: tuple[str, ...]) -> None:
    """Display detailed information on one or more images"""
    from tether.cli.network import print_inspect

    c = client()
    items: list[Any] = []
    errors: list[str] = []
    for name in images:
        try:
            items.append(c.get(f"/images/{name}/json"))
        except APIError as e:
            errors.append(str(e))
    print_inspect(items, errors, fmt)


@click.group("image", context_settings=CONTEXT)
def image() -> None:
    """Manage images"""


image.add_command(import_, "import")
image.add_command(load, "load")
image.add_command(ls, "ls")
image.add_command(ls, "list")
image.add_command(rm, "rm")
image.add_command(rm, "remove")
image.add_command(inspect, "inspect")
