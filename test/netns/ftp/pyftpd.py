# A pyftpdlib server for the namespace tests: anonymous, read-write, on [::]:PORT (dual stack).
# argv: root port
import logging
import sys

from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.servers import FTPServer

root, port = sys.argv[1], int(sys.argv[2])
auth = DummyAuthorizer()
auth.add_anonymous(root, perm="elradfmwMT")
handler = FTPHandler
handler.authorizer = auth
handler.banner = "pyftpdlib ready"
handler.passive_ports = range(30000, 30200)
handler.permit_foreign_addresses = False
logging.basicConfig(level=logging.WARNING)
server = FTPServer(("::", port), handler)
print("READY", flush=True)
server.serve_forever()
