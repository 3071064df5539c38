# A stand-in for sshd on the firewall: on every connection it writes an SSH identification line and
# closes. Listens on [::]:PORT (dual stack), prints "ready" once listening.
import socket
import sys

port = int(sys.argv[1])
s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.bind(("::", port))
s.listen(64)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    try:
        c.sendall(b"SSH-2.0-tzorp-test\r\n")
    finally:
        c.close()
