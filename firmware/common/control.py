"""The local control channel of a running service: how the committee's actions reach it.

A Unix domain socket in the service's state directory (``DEVICE/control/<service>.sock``; the folder 0750,
the socket 0660, so only root and the box's group can connect). One JSON request per connection, one JSON
answer, then the connection closes:

    request  {"action": "open", "role": "president", "pin": "222222", ...action's own fields}
    answer   {"ok": true, "message": "...", ...}  or  {"ok": false, "error": "wrong_pin", "message": "..."}

The server accepts on its own thread and hands each request to the service's main loop (`pending()`),
which answers between two ballots: a person's action never runs in the middle of a ballot's cycle, and
the service's state is touched by one thread only. The caller's pid, uid and gid (SO_PEERCRED) go with
the request, for the service's log. A request is at most MAX_REQUEST_BYTES; one that is not JSON, or not
an object, is answered with an error and never reaches the service.

The PIN crosses the socket as the person typed it (a local socket, readable only by root and the group)
and is never logged: the service checks it with firmware.common.roles.
"""

from __future__ import annotations

import json
import os
import queue
import socket
import stat
import struct
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MAX_REQUEST_BYTES = 16 * 1024
CLIENT_TIMEOUT_S = 60.0  # an answer comes between two ballots: a cycle takes about a second on a Pi
ACCEPT_POLL_S = 0.2  # how often the accept loop looks whether it was asked to stop
CONTROL_DIR = "control"


def socket_path(device_dir: Path, service: str) -> Path:
    return Path(device_dir) / CONTROL_DIR / f"{service}.sock"


class ControlError(RuntimeError):
    """The channel itself failed (no service listening, a broken answer); the message says what to do."""


@dataclass(frozen=True)
class Peer:
    pid: int
    uid: int
    gid: int


@dataclass
class Request:
    body: dict[str, Any]
    peer: Peer | None
    _answer: queue.Queue[dict[str, Any]] = field(default_factory=lambda: queue.Queue(maxsize=1), repr=False)

    @property
    def action(self) -> str:
        return str(self.body.get("action", ""))

    def answer(self, reply: dict[str, Any]) -> None:
        self._answer.put_nowait(reply)


class ControlServer:
    """Listens on `path`; the service's loop takes requests with `pending()` and answers each one."""

    def __init__(self, path: Path, *, timeout_s: float = CLIENT_TIMEOUT_S) -> None:
        self.path = Path(path)
        self.timeout_s = timeout_s
        self._requests: queue.Queue[Request] = queue.Queue()
        self._stop = threading.Event()
        if not self.path.parent.is_dir():  # made 0750; a folder that exists (a --socket elsewhere) is left as it is
            self.path.parent.mkdir(parents=True, mode=0o750)
            os.chmod(self.path.parent, 0o750)  # whatever the umask
        if len(os.fsencode(self.path)) >= 108:
            raise ControlError(f"{self.path}: a socket path must be under 108 bytes; give a shorter state directory "
                               "or --socket")
        self._remove_stale()
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o117)  # the socket is born 0660: never a moment when others could connect
        try:
            self._sock.bind(str(self.path))
        finally:
            os.umask(old)
        self._sock.listen(8)
        self._sock.settimeout(ACCEPT_POLL_S)
        self._thread = threading.Thread(target=self._accept_loop, name="control", daemon=True)
        self._thread.start()

    def _remove_stale(self) -> None:
        """A socket left by a killed service is removed; one a live service answers on is not."""
        if not self.path.exists() and not self.path.is_symlink():
            return
        if not stat.S_ISSOCK(self.path.lstat().st_mode):
            raise ControlError(f"{self.path}: exists and is not a socket; give another --socket (nothing removed)")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(self.path))
        except OSError:
            self.path.unlink()
            return
        finally:
            probe.close()
        raise ControlError(f"{self.path}: another service already listens there; stop it first")

    def pending(self) -> list[Request]:
        """The requests that came since the last call, oldest first."""
        out = []
        while True:
            try:
                out.append(self._requests.get_nowait())
            except queue.Empty:
                return out

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2 * ACCEPT_POLL_S + 1)
        self._sock.close()
        self.path.unlink(missing_ok=True)
        for request in self.pending():
            request.answer({"ok": False, "error": "stopping", "message": "the service is stopping; try again "
                                                                         "when it is back"})

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # closed
            threading.Thread(target=self._serve, args=(conn,), name="control-conn", daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            try:
                reply = self._handle(conn)
                _send(conn, reply)
            except OSError:
                pass  # the caller went away (or only probed the socket); an action taken stays taken

    def _handle(self, conn: socket.socket) -> dict[str, Any]:
        conn.settimeout(5.0)
        peer = _peer(conn)
        try:
            body = json.loads(_read_line(conn))
        except ValueError as exc:
            return {"ok": False, "error": "bad_request", "message": f"not one JSON request: {exc}"}
        if not isinstance(body, dict):
            return {"ok": False, "error": "bad_request", "message": "the request is not a JSON object"}
        request = Request(body, peer)
        self._requests.put(request)
        try:
            return request._answer.get(timeout=self.timeout_s)
        except queue.Empty:
            return {"ok": False, "error": "busy", "message": f"the service did not answer within "
                                                            f"{self.timeout_s:.0f} s; try again"}


def request(path: Path, body: dict[str, Any], *, timeout_s: float = CLIENT_TIMEOUT_S) -> dict[str, Any]:
    """Send one request to the service listening on `path` and return its answer."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout_s)
    try:
        try:
            sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError):
            raise ControlError(f"{path}: no service is listening there: is it running? (systemctl status "
                               "ballotbox-scanner; or give --state-dir / --socket of the running one)") from None
        except PermissionError:
            raise ControlError(f"{path}: permission denied: run as root or as a member of the box's group") from None
        _send(sock, body)
        sock.shutdown(socket.SHUT_WR)
        try:
            answer = json.loads(_read_line(sock))
        except TimeoutError:
            raise ControlError(f"{path}: the service did not answer within {timeout_s:.0f} s") from None
        except (ValueError, OSError) as exc:
            raise ControlError(f"{path}: the service's answer is not JSON ({exc})") from None
    finally:
        sock.close()
    if not isinstance(answer, dict) or not isinstance(answer.get("ok"), bool):
        raise ControlError(f"{path}: the service's answer is not a control answer")
    return answer


def _read_line(conn: socket.socket) -> bytes:
    data = b""
    while b"\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
        if len(data) > MAX_REQUEST_BYTES:
            raise ValueError(f"over {MAX_REQUEST_BYTES} bytes")
    if not data.strip():
        raise ValueError("empty")
    return data.split(b"\n", 1)[0]


def _send(conn: socket.socket, body: dict[str, Any]) -> None:
    conn.sendall(json.dumps(body, ensure_ascii=False).encode("utf-8") + b"\n")


def _peer(conn: socket.socket) -> Peer | None:
    try:
        raw = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except (OSError, AttributeError):  # not Linux
        return None
    pid, uid, gid = struct.unpack("3i", raw)
    return Peer(pid, uid, gid)
