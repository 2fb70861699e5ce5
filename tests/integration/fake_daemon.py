"""A stand-in for ``tether daemon`` used by the lab's own tests (run as a script).

Accepts ``daemon -H unix://SOCK --data-root D --exec-root E [...]`` and then, like a real
daemon would: starts a long-lived helper in its own session in the host namespace (like
conmon), bind-mounts a fresh network namespace under the exec root and starts a process in
it in its own session (like a container), mounts a tmpfs under the exec root, and answers
``GET /_ping`` with ``OK`` on the socket. With FAKE_DAEMON_FAIL set it prints an error and
exits instead.
"""

from __future__ import annotations

import http.server
import os
import socketserver
import subprocess
import sys


def _arg(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"OK" if self.path.endswith("/_ping") else b"not found"
        self.send_response(200 if body == b"OK" else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def address_string(self) -> str:
        return "unix"

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Server(socketserver.UnixStreamServer):
    pass


def main() -> None:
    argv = sys.argv[1:]
    assert argv[0] == "daemon", argv
    sock = _arg(argv, "-H").removeprefix("unix://")
    exec_root = _arg(argv, "--exec-root")
    if os.environ.get("FAKE_DAEMON_FAIL"):
        print("fake daemon: boom, cannot start", file=sys.stderr, flush=True)
        sys.exit(2)
    print(f"fake daemon pid {os.getpid()} args {argv}", file=sys.stderr, flush=True)
    if not os.path.exists(os.path.join(exec_root, "helpers.done")):
        # like conmon: survives the daemon (own session), lives in the host namespace
        conmon = subprocess.Popen(["sleep", "1000"], start_new_session=True)
        # like a container: its own network namespace, bind-mounted under the exec root
        nsfile = os.path.join(exec_root, "netns-c1")
        open(nsfile, "w").close()
        subprocess.run(["unshare", f"--net={nsfile}", "true"], check=True)
        container = subprocess.Popen(
            ["nsenter", f"--net={nsfile}", "sleep", "1000"], start_new_session=True
        )
        mnt = os.path.join(exec_root, "mnt")
        os.makedirs(mnt, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "fake", mnt], check=True)
        with open(os.path.join(exec_root, "helpers.done"), "w") as f:
            f.write(f"{conmon.pid} {container.pid}\n")
    if os.path.exists(sock):
        os.unlink(sock)
    with _Server(sock, _Handler) as server:
        server.serve_forever()


if __name__ == "__main__":
    main()
