"""runc's error texts, as Docker prints them (``runc create``/``runc exec`` failures)."""

from __future__ import annotations

import re

from tether.errors import TetherError

_MSG = re.compile(r'msg="((?:[^"\\]|\\.)*)"')


class ContainerStartError(TetherError):
    """``runc create``/``runc exec`` could not start the process.

    ``message`` is Docker's text; ``exit_status`` is what ``docker run``/``docker exec``
    exit with (127 command not found, 126 not executable, 125 otherwise).
    """

    status = 400

    def __init__(self, message: str, exit_status: int = 125) -> None:
        super().__init__(message)
        self.exit_status = exit_status


def runc_message(stderr: str) -> str:
    """The error text of runc's stderr (logrus ``msg="..."`` lines or plain text)."""
    lines = [ln.strip() for ln in stderr.strip().splitlines() if ln.strip()]
    msgs: list[str] = []
    for line in lines:
        m = _MSG.search(line)
        if m:
            if "level=warning" in line:
                continue
            msgs.append(m.group(1).encode().decode("unicode_escape"))
        else:
            msgs.append(line)
    return msgs[-1] if msgs else ""


def _status_for(message: str) -> int:
    if "executable file not found" in message or "no such file or directory" in message:
        return 127
    if "permission denied" in message:
        return 126
    return 125


def create_error(message: str) -> ContainerStartError:
    """Docker's text for a failed ``runc create``."""
    msg = message.strip()
    if not msg.startswith("runc create failed"):
        msg = f"runc create failed: {msg}"
    return ContainerStartError(
        f"failed to create shim task: OCI runtime create failed: {msg}: unknown", _status_for(msg)
    )


def exec_error(message: str) -> ContainerStartError:
    """Docker's text for a failed ``runc exec``."""
    msg = message.strip()
    for prefix in ("runc exec failed: ", "exec failed: "):
        if msg.startswith(prefix):
            msg = msg[len(prefix) :]
    return ContainerStartError(f"OCI runtime exec failed: exec failed: {msg}: unknown", 126)
