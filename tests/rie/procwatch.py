"""Sees how processes started under the emulator ended, from outside their namespaces.

The emulator reaps its extensions itself and does not log their exit status, so the tests
listen to the kernel's process events (the netlink proc connector; root, initial network
and PID namespaces) while a sandbox runs: every exec of a watched program, then its exit
status. Only processes that descend from the sandbox's own `unshare` are kept.
"""

import os
import select
import socket
import struct
import threading
import time
from dataclasses import dataclass
from typing import Dict, List, Optional

NETLINK_CONNECTOR = 11
CN_IDX_PROC = 1
CN_VAL_PROC = 1
PROC_CN_MCAST_LISTEN = 1
PROC_CN_MCAST_IGNORE = 2
PROC_EVENT_EXEC = 0x00000002
PROC_EVENT_EXIT = 0x80000000
NLMSG_DONE = 3
_HEADERS = 16 + 20  # nlmsghdr + cn_msg


@dataclass
class Seen:
    pid: int
    argv: List[str]
    exec_at: float
    status: Optional[int] = None  # wait(2) status
    exit_at: Optional[float] = None

    @property
    def exit_code(self) -> Optional[int]:
        if self.status is None or self.status & 0x7F:
            return None
        return self.status >> 8

    @property
    def signal(self) -> Optional[int]:
        if self.status is None or not self.status & 0x7F:
            return None
        return self.status & 0x7F

    def describe(self) -> str:
        if self.status is None:
            return "%s (pid %d): no exit seen" % (self.argv[0], self.pid)
        how = ("exit status %d" % self.exit_code if self.signal is None
               else "killed by signal %d" % self.signal)
        return "%s (pid %d): %s" % (self.argv[0], self.pid, how)


class ProcWatchError(RuntimeError):
    pass


def _parent(pid: int) -> Optional[int]:
    try:
        with open("/proc/%d/status" % pid) as status:
            for line in status:
                if line.startswith("PPid:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class ProcWatch:
    """Records execs of programs whose argv[0] starts with one of `prefixes`, and their exits.

    set_root(pid) names the sandbox's `unshare` process; execs outside its tree are ignored.
    """

    def __init__(self, prefixes):
        self.prefixes = tuple(prefixes)
        self.root: Optional[int] = None
        self.seen: Dict[int, Seen] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        try:
            self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_CONNECTOR)
            # Busy machines emit many events; a large buffer keeps ours from being dropped.
            self.sock.setsockopt(socket.SOL_SOCKET, 33, 8 << 20)  # SO_RCVBUFFORCE
            self.sock.bind((0, CN_IDX_PROC))
            self._control(PROC_CN_MCAST_LISTEN)
        except OSError as exc:
            raise ProcWatchError("cannot listen to the kernel's process events (netlink proc "
                                 "connector): %s; it needs root in the initial namespaces" % exc)
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _control(self, op):
        payload = struct.pack("=I", op)
        cn_msg = struct.pack("=IIIIHH", CN_IDX_PROC, CN_VAL_PROC, 0, 0, len(payload), 0) + payload
        self.sock.send(struct.pack("=IHHII", 16 + len(cn_msg), NLMSG_DONE, 0, 0, os.getpid())
                       + cn_msg)

    def _in_tree(self, pid: int) -> bool:
        for _ in range(8):
            pid = _parent(pid) or 0
            if pid <= 1:
                return False
            if pid == self.root:
                return True
        return False

    def _on_exec(self, tgid: int):
        try:
            with open("/proc/%d/cmdline" % tgid, "rb") as cmdline:
                argv = [a.decode(errors="replace") for a in cmdline.read().split(b"\0") if a]
        except OSError:
            return
        if not argv or not argv[0].startswith(self.prefixes) or not self._in_tree(tgid):
            return
        with self._lock:
            self.seen[tgid] = Seen(tgid, argv, time.time())

    def _on_exit(self, pid: int, tgid: int, status: int):
        if pid != tgid:
            return
        with self._lock:
            entry = self.seen.get(tgid)
            if entry is not None and entry.status is None:
                entry.status, entry.exit_at = status, time.time()

    def _loop(self):
        while not self._stop.is_set():
            ready, _, _ = select.select([self.sock], [], [], 0.2)
            if not ready:
                continue
            try:
                data = self.sock.recv(65536)
            except OSError:
                continue
            offset = 0
            while offset + _HEADERS + 16 <= len(data):
                length = struct.unpack_from("=I", data, offset)[0]
                what = struct.unpack_from("=I", data, offset + _HEADERS)[0]
                body = offset + _HEADERS + 16
                if what == PROC_EVENT_EXEC:
                    self._on_exec(struct.unpack_from("=II", data, body)[1])
                elif what == PROC_EVENT_EXIT:
                    pid, tgid, status = struct.unpack_from("=III", data, body)
                    self._on_exit(pid, tgid, status)
                if length <= 0:
                    break
                offset += (length + 3) & ~3

    def matching(self, argv0: str) -> List[Seen]:
        with self._lock:
            return [entry for entry in self.seen.values() if entry.argv[0] == argv0]

    def close(self):
        self._stop.set()
        self.thread.join(timeout=2)
        try:
            self._control(PROC_CN_MCAST_IGNORE)
        except OSError:
            pass
        self.sock.close()
