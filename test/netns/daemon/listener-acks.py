# For the daemon's namespace tests: how the listening sockets on the given ports acknowledge. Run in
# the firewall's namespace: for each listening socket `ss` shows on one of the ports, takes a copy of
# its descriptor from the process that holds it (pidfd_getfd, Linux >= 5.6, root) and prints
# "<port> <4|6> <TCP_QUICKACK>" (0: the connections it accepts start with their ACKs delayed).
import ctypes
import os
import re
import socket
import subprocess
import sys

SYS_PIDFD_GETFD = 438  # the same number on every architecture (a syscall added after 5.0)
ports = {int(p) for p in sys.argv[1:]}
libc = ctypes.CDLL(None, use_errno=True)
out = subprocess.run(["ss", "-Htlnp"], capture_output=True, text=True, check=True).stdout
for line in out.splitlines():
    local = line.split()[3]
    port = int(local.rsplit(":", 1)[1])
    if port not in ports:
        continue
    m = re.search(r"pid=(\d+),fd=(\d+)", line)
    if not m:
        sys.exit("no process shown for " + line)
    pidfd = os.pidfd_open(int(m[1]))
    fd = libc.syscall(SYS_PIDFD_GETFD, pidfd, int(m[2]), 0)
    if fd < 0:
        sys.exit("pidfd_getfd: " + os.strerror(ctypes.get_errno()))
    s = socket.socket(fileno=fd)
    print(port, 6 if s.family == socket.AF_INET6 else 4, s.getsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK))
    s.close()
    os.close(pidfd)
