#!/usr/bin/env python3
# Small network actors for the kernel namespace tests. Every mode prints JSON lines.
#   serve PORT                 echo server on [::]:PORT (dual stack); prints {"peer": addr} per connection
#   tlisten HOST PORT          transparent (IP_TRANSPARENT / IPV6_TRANSPARENT) echo listener; per
#                              connection prints {"local": addr, "lport": n, "peer": addr, "mark": n}
#   connect HOST PORT TIMEOUT  one TCP connection: {"ok": true, "echo": ...} or {"ok": false, "errno": n, "error": name}
#   hold HOST PORT             keeps one connection open; a line on stdin is sent and its echo printed
import errno, json, os, select, socket, sys, threading

IP_TRANSPARENT, IPV6_TRANSPARENT, SO_MARK = 19, 75, 36

def out(o):
    print(json.dumps(o), flush=True)

def unmap(a):
    return a[7:] if a.startswith('::ffff:') else a

def echo(c):
    try:
        while True:
            d = c.recv(65536)
            if not d:
                break
            c.sendall(d)
    except OSError:
        pass
    finally:
        c.close()

def serve(port):
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(('::', port))
    s.listen(128)
    out({'listening': port})
    while True:
        c, peer = s.accept()
        out({'peer': unmap(peer[0])})
        threading.Thread(target=echo, args=(c,), daemon=True).start()

def tlisten(host, port):
    fam = socket.AF_INET6 if ':' in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if fam == socket.AF_INET:
        s.setsockopt(socket.SOL_IP, IP_TRANSPARENT, 1)
    else:
        s.setsockopt(socket.IPPROTO_IPV6, IPV6_TRANSPARENT, 1)
    s.bind((host, port))
    s.listen(128)
    out({'listening': port, 'host': host})
    while True:
        c, peer = s.accept()
        local = c.getsockname()
        out({'local': local[0], 'lport': local[1], 'peer': peer[0], 'mark': c.getsockopt(socket.SOL_SOCKET, SO_MARK)})
        threading.Thread(target=echo, args=(c,), daemon=True).start()

def connect(host, port, timeout):
    fam = socket.AF_INET6 if ':' in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect((host, port))
        s.sendall(b'ping\n')
        d = s.recv(100)
        out({'ok': True, 'echo': d.decode(errors='replace').strip()})
    except socket.timeout:
        out({'ok': False, 'errno': errno.ETIMEDOUT, 'error': 'ETIMEDOUT'})
    except OSError as e:
        out({'ok': False, 'errno': e.errno, 'error': errno.errorcode.get(e.errno, str(e.errno))})

def hold(host, port):
    fam = socket.AF_INET6 if ':' in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect((host, port))
    out({'connected': True})
    for line in sys.stdin:
        try:
            s.sendall(line.encode())
            d = s.recv(100)
            out({'echo': d.decode(errors='replace').strip()})
        except OSError as e:
            out({'error': errno.errorcode.get(e.errno, str(e.errno))})

mode = sys.argv[1]
if mode == 'serve':
    serve(int(sys.argv[2]))
elif mode == 'tlisten':
    tlisten(sys.argv[2], int(sys.argv[3]))
elif mode == 'connect':
    connect(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
elif mode == 'hold':
    hold(sys.argv[2], int(sys.argv[3]))
