"""Record the names created in directories (inotify), for the pyxis scenario.

Usage: watch_dirs.py OUTPUT READY_FILE DIR [DIR...]
Writes its process id to READY_FILE once the watches are set, then
"<dir>\t<name>" to OUTPUT for every file created or moved into a watched
directory, until SIGTERM or 300 s have passed.
"""

import ctypes
import os
import select
import signal
import struct
import sys
import time

IN_CREATE = 0x00000100
IN_MOVED_TO = 0x00000080
EVENT_HEADER = struct.Struct("iIII")


def main():
    output, ready, dirs = sys.argv[1], sys.argv[2], sys.argv[3:]
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    fd = libc.inotify_init1(os.O_NONBLOCK)
    if fd < 0:
        raise OSError(ctypes.get_errno(), "inotify_init1")
    watches = {}
    for d in dirs:
        wd = libc.inotify_add_watch(fd, d.encode(), IN_CREATE | IN_MOVED_TO)
        if wd < 0:
            raise OSError(ctypes.get_errno(), f"inotify_add_watch {d}")
        watches[wd] = d
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    deadline = time.monotonic() + 300
    with open(output, "w", encoding="utf-8") as out:
        with open(ready, "w", encoding="utf-8") as ready_file:
            ready_file.write(f"{os.getpid()}\n")
        # After SIGTERM, events already queued are still read before exiting.
        while time.monotonic() < deadline:
            if not select.select([fd], [], [], 0.2)[0]:
                if stop:
                    break
                continue
            data = os.read(fd, 65536)
            pos = 0
            while pos < len(data):
                wd, _mask, _cookie, length = EVENT_HEADER.unpack_from(data, pos)
                name = data[pos + EVENT_HEADER.size:pos + EVENT_HEADER.size + length].rstrip(b"\0").decode()
                pos += EVENT_HEADER.size + length
                out.write(f"{watches.get(wd, '?')}\t{name}\n")
                out.flush()


if __name__ == "__main__":
    main()
