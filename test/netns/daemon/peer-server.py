# Test server for the daemon's namespace tests (runs in the lab's server namespace, dual stack).
#   port 8080: answers "peer <client address>" and closes at once
#   ports 8081, 9090: answer "peer <client address>" and keep the connection until the client closes
# Prints "accept <port> <client address>" for every connection, and "ready" when listening.
import socket
import sys
import threading


def serve(port, hold):
    s = socket.socket(socket.AF_INET6)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("::", port))
    s.listen(512)

    def handle(c, a):
        try:
            c.sendall(("peer %s\n" % a[0]).encode())
            if hold:
                while c.recv(4096):
                    pass
        except OSError:
            pass
        finally:
            c.close()

    def loop():
        while True:
            c, a = s.accept()
            print("accept %d %s" % (port, a[0]), flush=True)
            threading.Thread(target=handle, args=(c, a), daemon=True).start()

    threading.Thread(target=loop, daemon=True).start()


serve(8080, False)
serve(8081, True)
serve(9090, True)
print("ready", flush=True)
sys.stdin.read()  # until the test ends (the lab kills us)
threading.Event().wait()
