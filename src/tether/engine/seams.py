"""The seams of the container engine: what it needs from runtime, images, kernel and DNS.

Each Protocol names only what the engine calls, so a reader can follow a call from
``ContainerController`` to its collaborator, and ``mypy --strict`` proves that the real
parts (``tether.runtime``, ``tether.linux``, ``tether.engine.dns``) and the test doubles
(``tether.testing``) fit. The daemon (``tether.daemon``) is the only place that picks the
concrete parts; the engine never imports them.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

from tether.contracts.runtime import Bundles, BundleSpec, ResourceSpec
from tether.linux.nsthread import OverlayMount, PrivateMounts

__all__ = ["BundleSpec", "Bundles"]  # the runtime's half of the bundle step, re-exported


class ImageConfig(Protocol):
    """An image as a container's create reads it (its config defaults)."""

    @property
    def id(self) -> str: ...
    @property
    def env(self) -> list[str]: ...
    @property
    def cmd(self) -> list[str] | None: ...
    @property
    def entrypoint(self) -> list[str] | None: ...
    @property
    def working_dir(self) -> str: ...
    @property
    def exposed_ports(self) -> dict[str, Any]: ...
    @property
    def labels(self) -> dict[str, str]: ...
    @property
    def volumes(self) -> dict[str, Any]: ...
    # P4 (health): the image's Healthcheck (None when it has none)
    @property
    def healthcheck(self) -> dict[str, Any] | None: ...


ImageT = TypeVar("ImageT", bound=ImageConfig)


class Images(Protocol[ImageT]):
    """The image store as containers use it: look an image up, give a container its root."""

    def get(self, ref: str) -> ImageT: ...
    async def prepare_rootfs(self, image: ImageT, container_id: str) -> Path: ...
    def overlay_for(self, container_id: str) -> OverlayMount | None: ...
    async def unmount_rootfs(self, container_id: str) -> None: ...
    async def remove_rootfs(self, container_id: str) -> None: ...


class Attachment(Protocol):
    """A live container's streams (``docker attach``)."""

    def __aiter__(self) -> AsyncIterator[tuple[str, bytes]]: ...
    async def write(self, data: bytes) -> None: ...
    def close_stdin(self) -> None: ...
    def close(self) -> None: ...


class ExecProcess(Protocol):
    """A process started in a running container (``docker exec``)."""

    pid: int

    def output(self) -> AsyncIterator[tuple[str, bytes]]: ...
    async def write(self, data: bytes) -> None: ...
    def close_stdin(self) -> None: ...
    def resize(self, height: int, width: int) -> None: ...
    async def wait(self) -> int: ...
    def kill(self, sig: int = ...) -> None: ...  # a health probe past its timeout


Binds = Sequence[tuple[str, str, bool]]
"""Mounts to make over a stopped container's root for ``docker cp``: (source, dest, ro)."""


class Runtime(Protocol):
    """The container runtime and its monitor (runc under conmon): one process per container."""

    async def create(
        self,
        cid: str,
        bundle: Path,
        log_path: Path,
        *,
        stdin: bool = False,
        tty: bool = False,
        log_size_max: int | None = None,
        name: str | None = None,
        stdin_once: bool = True,
        mounts: PrivateMounts | None = None,
    ) -> int: ...
    async def start(self, cid: str) -> None: ...
    async def kill(self, cid: str, sig: int | str = ...) -> None: ...
    async def state(self, cid: str) -> dict[str, Any] | None: ...
    async def delete(self, cid: str) -> None: ...
    def exit_code(self, cid: str) -> int | None: ...
    def watch_exits(self) -> AsyncIterator[tuple[str, int]]: ...
    async def attach(self, cid: str) -> Attachment: ...
    def read_logs(
        self,
        log_path: Path,
        *,
        follow: bool = False,
        tail: int | None = None,
        stdout: bool = True,
        stderr: bool = True,
        since: float = 0.0,
        until: float | None = None,
        timestamps: bool = False,
        stop: Awaitable[Any] | None = None,
    ) -> AsyncIterator[tuple[str, bytes]]: ...
    def resize(self, cid: str, height: int, width: int) -> None: ...
    async def exec(
        self,
        cid: str,
        args: Sequence[str],
        *,
        env: Sequence[str] = (),
        cwd: str | None = None,
        user: str | None = None,
        tty: bool = False,
        stdin: bool = False,
        privileged: bool = False,
    ) -> ExecProcess: ...
    async def pause(self, cid: str) -> None: ...
    async def resume(self, cid: str) -> None: ...
    async def update(self, cid: str, resources: ResourceSpec) -> None: ...  # P3: docker update
    async def top(self, cid: str, ps_args: list[str]) -> tuple[list[int], str]: ...
    async def stats(self, cid: str) -> dict[str, Any]: ...
    # binds: a stopped container's volumes and bind mounts, (source, destination, read-only)
    async def path_stat(
        self, pid: int | None, overlay: OverlayMount | None, path: str, binds: Binds = ()
    ) -> dict[str, Any]: ...
    def archive(
        self, pid: int | None, overlay: OverlayMount | None, path: str, binds: Binds = ()
    ) -> AsyncIterator[bytes]: ...
    def export(self, overlay: OverlayMount) -> AsyncIterator[bytes]: ...
    async def extract(
        self,
        pid: int | None,
        overlay: OverlayMount | None,
        path: str,
        data: AsyncIterator[bytes],
        no_overwrite: bool = False,
        binds: Binds = (),
    ) -> None: ...
    async def changes(self, overlay: OverlayMount) -> builtins.list[dict[str, Any]]: ...
    async def size_rw(self, overlay: OverlayMount) -> int: ...
    # volumes (issue 16, P2): unpack a tar into a host folder, chrooted there (copy-up)
    async def fill_dir(self, root: str, data: AsyncIterator[bytes]) -> None: ...


class Netns(Protocol):
    """The folder of sandbox network namespaces (``tether.linux.netns.NetnsDir``)."""

    @property
    def root(self) -> object: ...
    def path(self, name: str) -> str: ...
    async def create(self, name: str) -> str: ...
    def delete(self, name: str) -> None: ...
    def list(self) -> list[str]: ...


class Dns(Protocol):
    """The embedded DNS server, as its owner drives it: one listener per sandbox."""

    async def add_sandbox(
        self, sandbox: str, netns_path: str, *, search_domains: Sequence[str] = ()
    ) -> None: ...
    async def remove_sandbox(self, sandbox: str) -> None: ...
    def invalidate(self) -> None: ...
    def sandboxes(self) -> list[str]: ...


class EventSink(Protocol):
    """Where container and network events go (``tether.engine.events.Events``)."""

    def emit(self, kind: str, action: str, actor_id: str, attrs: dict[str, str]) -> None: ...


class PortsChanged(Protocol):
    """Told when one container's published ports came or went (the firewall sync)."""

    async def sync(self, container_id: str | None = None) -> None: ...


class ImageCatalog(Images[ImageT], Protocol[ImageT]):
    """The whole image store, as the API's image routes use it through the engine."""

    def list(self) -> builtins.list[ImageT]: ...
    async def import_tar(
        self,
        data: bytes | AsyncIterator[bytes],
        tag: str | None = None,
        changes: Iterable[str] = (),
        *,
        message: str = "",
    ) -> ImageT: ...
    async def load(self, data: bytes | AsyncIterator[bytes]) -> builtins.list[str]: ...
    async def tag(self, ref: str, repo: str, tag: str | None = None) -> ImageT: ...
    async def remove(
        self,
        ref: str,
        force: bool = False,
        in_use: Callable[[str], tuple[str, bool] | None] | None = None,
    ) -> builtins.list[dict[str, str]]: ...
    async def commit(
        self,
        image_id: str,
        container_id: str,
        *,
        container_config: dict[str, Any],
        config: dict[str, Any] | None = None,
        changes: Iterable[str] = (),
        author: str = "",
        comment: str = "",
        tag: str | None = None,
    ) -> ImageT: ...
    def disk_usage(self) -> tuple[int, dict[str, int]]: ...
    def inspect_json(self, image: ImageT) -> dict[str, Any]: ...
    def summary_json(self, image: ImageT) -> dict[str, Any]: ...
    def history(self, ref: str) -> builtins.list[dict[str, Any]]: ...
    def save(self, names: Iterable[str]) -> AsyncIterator[bytes]: ...
    async def prune(
        self,
        dangling: bool = True,
        match: Callable[[ImageT], bool] | None = None,
        in_use: Callable[[str], tuple[str, bool] | None] | None = None,
    ) -> dict[str, Any]: ...


class VolumeMounts(Protocol):
    """Mounts a local volume's folder with its driver options (``mount -t TYPE -o O DEVICE
    PATH``), in the daemon's mount namespace (``tether.linux.volmount.HostMounts``)."""

    def is_mounted(self, path: str) -> bool: ...
    async def mount(self, kind: str, device: str, options: str, path: str) -> None: ...
    async def unmount(self, path: str) -> None: ...
