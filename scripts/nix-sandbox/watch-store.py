"""Records every entry created, moved or deleted directly in a directory.

    python3 watch-store.py DIR READY_FILE

Used by scripts/nix-sandbox.sh on the simulated store while a derivation
builds: a build that writes anything beside `$out` (even a staging directory
it renames into place before it ends) shows up here. Prints one line per
event, `EVENT NAME`, and exits on SIGTERM. READY_FILE is created once the
watch is in place.
"""

import ctypes
import os
import select
import signal
import struct
import sys

IN_CREATE = 0x100
IN_DELETE = 0x200
IN_MOVED_FROM = 0x40
IN_MOVED_TO = 0x80
IN_ISDIR = 0x40000000
NAMES = {
    IN_CREATE: "CREATE",
    IN_DELETE: "DELETE",
    IN_MOVED_FROM: "MOVED_FROM",
    IN_MOVED_TO: "MOVED_TO",
}


def main() -> int:
    directory, ready = sys.argv[1], sys.argv[2]
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.inotify_init1(os.O_CLOEXEC)
    if fd < 0:
        print(f"inotify_init1: {os.strerror(ctypes.get_errno())}", file=sys.stderr)
        return 1
    mask = IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO
    if libc.inotify_add_watch(fd, directory.encode(), mask) < 0:
        print(f"inotify_add_watch {directory}: {os.strerror(ctypes.get_errno())}", file=sys.stderr)
        return 1
    stop = False

    def on_term(_signum: int, _frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    open(ready, "w").close()
    header = struct.Struct("iIII")
    while True:
        readable, _, _ = select.select([fd], [], [], 0.2)
        if not readable:
            if stop:
                return 0
            continue
        data = os.read(fd, 65536)
        offset = 0
        while offset < len(data):
            _wd, event_mask, _cookie, length = header.unpack_from(data, offset)
            name = data[offset + header.size : offset + header.size + length].rstrip(b"\0")
            offset += header.size + length
            for bit, label in NAMES.items():
                if event_mask & bit:
                    print(f"{label} {name.decode(errors='replace')}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
