// tzorp_native: the few socket calls Node.js cannot make (linux-tproxy.md, "Node.js approach").
//
// - listen():  a transparent listening socket (IP_TRANSPARENT / IPV6_TRANSPARENT set before bind, so
//              TPROXY can assign diverted connections to it), handed to net.Server.listen({fd}).
// - socket():  an unconnected client socket bound to a (possibly foreign) address and port before
//              connect (forge_addr / forge_port). IP_TRANSPARENT must be set before bind(), and Node
//              has no hook between socket() and bind(). The fd goes to new net.Socket({fd}).connect(),
//              so Node's own connect path gives 'connect', ECONNREFUSED and timeouts (pitfall 8:
//              connecting here would lose the 'connect' event).
// - getMark()/setMark(): SO_MARK (tcp_fwmark_accept makes an accepted socket carry the SYN's mark,
//              which is how a proxy learns the kernel's rule id).
// - getTransparent(): read IP(V6)_TRANSPARENT back (tests).
// - close():   release an fd nobody adopted.
//
// Only node_api.h (N-API), plain C. Every failure throws an Error with `syscall` (the call that
// failed, e.g. "bind") and `errno` (the positive errno value); the TypeScript wrapper turns that into
// a TzorpError NATIVE_CALL with the errno's name.
#include <node_api.h>

#include "tzorp_errors.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef IP_TRANSPARENT
#define IP_TRANSPARENT 19
#endif
#ifndef IPV6_TRANSPARENT
#define IPV6_TRANSPARENT 75
#endif
#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif
#ifndef SO_REUSEPORT
#define SO_REUSEPORT 15
#endif
#ifndef SO_MARK
#define SO_MARK 36
#endif

#define HOST_MAX 64

napi_value tzorp_throw_errno(napi_env env, const char *call, int err) {
  char msg[160];
  snprintf(msg, sizeof msg, "%s failed: %s (errno %d)", call, strerror(err), err);
  napi_value jmsg, error, jcall, jerrno;
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &jmsg);
  napi_create_error(env, NULL, jmsg, &error);
  napi_create_string_utf8(env, call, NAPI_AUTO_LENGTH, &jcall);
  napi_create_int32(env, err, &jerrno);
  napi_set_named_property(env, error, "syscall", jcall);
  napi_set_named_property(env, error, "errno", jerrno);
  napi_throw(env, error);
  return NULL;
}

napi_value tzorp_throw_type(napi_env env, const char *msg) {
  napi_throw_type_error(env, NULL, msg);
  return NULL;
}

static bool get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return false;
  for (size_t i = argc; i < want; i++) napi_get_undefined(env, &argv[i]);
  return true;
}

static bool is_nullish(napi_env env, napi_value v) {
  napi_valuetype t;
  napi_typeof(env, v, &t);
  return t == napi_undefined || t == napi_null;
}

static bool get_int(napi_env env, napi_value v, int64_t *out) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_number) return false;
  return napi_get_value_int64(env, v, out) == napi_ok;
}

// A boolean argument (false when absent or not a boolean).
static bool get_flag_value(napi_env env, napi_value v) {
  bool b = false;
  if (is_nullish(env, v) || napi_get_value_bool(env, v, &b) != napi_ok) return false;
  return b;
}

// Boolean property of an options object; `dflt` when absent.
static bool get_flag(napi_env env, napi_value obj, const char *name, bool dflt) {
  if (is_nullish(env, obj)) return dflt;
  napi_value v;
  bool has = false;
  if (napi_has_named_property(env, obj, name, &has) != napi_ok || !has) return dflt;
  if (napi_get_named_property(env, obj, name, &v) != napi_ok) return dflt;
  bool b = dflt;
  if (napi_get_value_bool(env, v, &b) != napi_ok) return dflt;
  return b;
}

// Integer property of an options object; returns false when absent.
static bool get_opt_int(napi_env env, napi_value obj, const char *name, int64_t *out) {
  if (is_nullish(env, obj)) return false;
  napi_value v;
  bool has = false;
  if (napi_has_named_property(env, obj, name, &has) != napi_ok || !has) return false;
  if (napi_get_named_property(env, obj, name, &v) != napi_ok) return false;
  return get_int(env, v, out);
}

// Decimal digits of `v` (0..65535) at `p`; returns the end.
static char *put_dec(char *p, unsigned v) {
  char t[5];
  int n = 0;
  do t[n++] = (char)('0' + v % 10);
  while ((v /= 10) != 0);
  while (n > 0) *p++ = t[--n];
  return p;
}

static char *put_v4(char *p, const uint8_t *b) {
  for (int i = 0; i < 4; i++) {
    if (i) *p++ = '.';
    p = put_dec(p, b[i]);
  }
  *p = 0;
  return p;
}

// IPv6 text as inet_ntop writes it (RFC 5952: lower-case hex without leading zeros, the first longest
// run of two or more zero groups as "::"). glibc's inet_ntop formats with sprintf, a group at a time,
// and was a visible part of a new connection's cost (the accept gives two addresses, the connect one);
// the forms with an IPv4 tail (::a.b.c.d, ::ffff:a.b.c.d) are left to it.
static void put_v6(char *host, const uint8_t *b) {
  uint16_t w[8];
  for (int i = 0; i < 8; i++) w[i] = (uint16_t)(b[2 * i] << 8 | b[2 * i + 1]);
  if (w[0] == 0 && w[1] == 0 && w[2] == 0 && w[3] == 0 && w[4] == 0 && (w[5] == 0 || w[5] == 0xffff)) {
    inet_ntop(AF_INET6, b, host, TZORP_HOST_TEXT);
    return;
  }
  int best = -1, bestLen = 0;
  for (int i = 0; i < 8;) {
    if (w[i] != 0) {
      i++;
      continue;
    }
    int j = i;
    while (j < 8 && w[j] == 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (bestLen < 2) best = -1;
  static const char hex[] = "0123456789abcdef";
  char *p = host;
  bool sep = false; // a ':' before the next group (not right after "::")
  for (int i = 0; i < 8; i++) {
    if (i == best) {
      *p++ = ':';
      *p++ = ':';
      i += bestLen - 1;
      sep = false;
      continue;
    }
    if (sep) *p++ = ':';
    sep = true;
    unsigned v = w[i];
    bool any = false;
    for (int sh = 12; sh >= 0; sh -= 4) {
      unsigned d = (v >> sh) & 15;
      if (d || any || sh == 0) {
        *p++ = hex[d];
        any = true;
      }
    }
  }
  *p = 0;
}

// Text of a socket address (tzorp_errors.h).
void tzorp_addr_text(const struct sockaddr_storage *ss, char *host, int *port) {
  host[0] = 0;
  *port = 0;
  if (ss->ss_family == AF_INET) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
    put_v4(host, (const uint8_t *)&a->sin_addr);
    *port = ntohs(a->sin_port);
  } else if (ss->ss_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
    if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr)) put_v4(host, &a->sin6_addr.s6_addr[12]);
    else put_v6(host, a->sin6_addr.s6_addr);
    *port = ntohs(a->sin6_port);
  }
}

// addrText(bytes) -> the text tzorp_addr_text gives for a 4- or 16-byte address (for tests: the
// formatter above against JavaScript's own).
static napi_value AddrText(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], out;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  void *data = NULL;
  size_t len = 0;
  if (argc < 1 || napi_get_buffer_info(env, argv[0], &data, &len) != napi_ok || (len != 4 && len != 16)) {
    napi_throw_type_error(env, NULL, "addrText(bytes): a Buffer of 4 or 16 bytes");
    return NULL;
  }
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  if (len == 4) {
    ss.ss_family = AF_INET;
    memcpy(&((struct sockaddr_in *)&ss)->sin_addr, data, 4);
  } else {
    ss.ss_family = AF_INET6;
    memcpy(&((struct sockaddr_in6 *)&ss)->sin6_addr, data, 16);
  }
  char host[TZORP_HOST_TEXT];
  int port;
  tzorp_addr_text(&ss, host, &port);
  napi_create_string_utf8(env, host, NAPI_AUTO_LENGTH, &out);
  return out;
}

// Parse `host` (IPv4 or IPv6 text, no brackets, no scope) and `port` into a sockaddr (tzorp_errors.h).
bool tzorp_make_addr(const char *host, int port, struct sockaddr_storage *ss, socklen_t *len) {
  memset(ss, 0, sizeof *ss);
  struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
  struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
  if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
    a4->sin_family = AF_INET;
    a4->sin_port = htons((uint16_t)port);
    *len = sizeof *a4;
    return true;
  }
  if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons((uint16_t)port);
    *len = sizeof *a6;
    return true;
  }
  return false;
}

static bool get_host(napi_env env, napi_value v, char *buf) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_string) return false;
  size_t n = 0;
  if (napi_get_value_string_utf8(env, v, buf, HOST_MAX, &n) != napi_ok) return false;
  return n > 0 && n < HOST_MAX - 1;
}

static int set_int_opt(int fd, int level, int name, int value) {
  return setsockopt(fd, level, name, &value, sizeof value);
}

static int set_transparent(int fd, int family) {
  if (family == AF_INET6) return set_int_opt(fd, SOL_IPV6, IPV6_TRANSPARENT, 1);
  return set_int_opt(fd, SOL_IP, IP_TRANSPARENT, 1);
}

static napi_value fd_value(napi_env env, int fd) {
  napi_value r;
  napi_create_int32(env, fd, &r);
  return r;
}

// Close `fd` keeping errno of the call that failed, then throw.
static napi_value fail_close(napi_env env, int fd, const char *call) {
  int err = errno;
  close(fd);
  return tzorp_throw_errno(env, call, err);
}

// listen(host: string, port: number, backlog: number,
//        opts?: { transparent?: true, reuseAddr?: true, reusePort?: false, v6Only?: false, mark?: number })
//   -> fd of a listening, non-blocking socket.
static napi_value Listen(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  if (!get_args(env, info, 4, argv)) return NULL;
  char host[HOST_MAX];
  int64_t port, backlog;
  if (!get_host(env, argv[0], host)) return tzorp_throw_type(env, "listen: host must be an address string");
  if (!get_int(env, argv[1], &port) || port < 0 || port > 65535)
    return tzorp_throw_type(env, "listen: port must be 0..65535");
  if (!get_int(env, argv[2], &backlog) || backlog < 1 || backlog > 65535)
    return tzorp_throw_type(env, "listen: backlog must be 1..65535");
  struct sockaddr_storage ss;
  socklen_t len;
  if (!tzorp_make_addr(host, (int)port, &ss, &len)) return tzorp_throw_type(env, "listen: host is not an IPv4/IPv6 address");
  int family = ss.ss_family;
  int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return tzorp_throw_errno(env, "socket", errno);
  if (get_flag(env, argv[3], "transparent", true) && set_transparent(fd, family) < 0)
    return fail_close(env, fd, family == AF_INET6 ? "setsockopt(IPV6_TRANSPARENT)" : "setsockopt(IP_TRANSPARENT)");
  if (get_flag(env, argv[3], "reuseAddr", true) && set_int_opt(fd, SOL_SOCKET, SO_REUSEADDR, 1) < 0)
    return fail_close(env, fd, "setsockopt(SO_REUSEADDR)");
  if (get_flag(env, argv[3], "reusePort", false) && set_int_opt(fd, SOL_SOCKET, SO_REUSEPORT, 1) < 0)
    return fail_close(env, fd, "setsockopt(SO_REUSEPORT)");
  if (family == AF_INET6 &&
      set_int_opt(fd, SOL_IPV6, IPV6_V6ONLY, get_flag(env, argv[3], "v6Only", false) ? 1 : 0) < 0)
    return fail_close(env, fd, "setsockopt(IPV6_V6ONLY)");
  int64_t mark;
  if (get_opt_int(env, argv[3], "mark", &mark) && set_int_opt(fd, SOL_SOCKET, SO_MARK, (int)(uint32_t)mark) < 0)
    return fail_close(env, fd, "setsockopt(SO_MARK)");
  if (bind(fd, (struct sockaddr *)&ss, len) < 0) return fail_close(env, fd, "bind");
  if (listen(fd, (int)backlog) < 0) return fail_close(env, fd, "listen");
  return fd_value(env, fd);
}

// socket(family: 4|6, bindHost: string|null, bindPort: number, flags: number, mark: number)
//   flags: SOCKET_TRANSPARENT | SOCKET_REUSEADDR | SOCKET_NODELAY | SOCKET_DEFER_ACK (bits 1, 2, 4, 8);
//   mark: SO_MARK, or -1 for
//   none. (Numbers, not an options object: each named property read from C makes V8 look its name up in
//   the string table, eight of them per server connection.)
//   -> fd of an unconnected, non-blocking TCP socket, bound when bindHost or bindPort is given.
// With a host and port 0, IP_BIND_ADDRESS_NO_PORT defers the port choice to connect(), per 4-tuple
// (pitfall 5: forged tuples share the client's port space on the server).
#define SOCKET_TRANSPARENT 1
#define SOCKET_REUSEADDR 2
#define SOCKET_NODELAY 4
#define SOCKET_DEFER_ACK 8
static napi_value Socket(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  if (!get_args(env, info, 5, argv)) return NULL;
  int64_t fam, port, flags, mark;
  if (!get_int(env, argv[0], &fam) || (fam != 4 && fam != 6)) return tzorp_throw_type(env, "socket: family must be 4 or 6");
  if (!get_int(env, argv[2], &port) || port < 0 || port > 65535)
    return tzorp_throw_type(env, "socket: port must be 0..65535");
  if (!get_int(env, argv[3], &flags) || flags < 0 || flags > 15) return tzorp_throw_type(env, "socket: flags must be 0..15");
  if (!get_int(env, argv[4], &mark) || mark < -1 || mark > 0xffffffffLL)
    return tzorp_throw_type(env, "socket: mark must be -1 (none) or 0..0xffffffff");
  int family = fam == 6 ? AF_INET6 : AF_INET;
  struct sockaddr_storage ss;
  socklen_t len = 0;
  bool do_bind = false;
  if (!is_nullish(env, argv[1])) {
    char host[HOST_MAX];
    if (!get_host(env, argv[1], host)) return tzorp_throw_type(env, "socket: bindHost must be an address string or null");
    if (!tzorp_make_addr(host, (int)port, &ss, &len)) return tzorp_throw_type(env, "socket: bindHost is not an IPv4/IPv6 address");
    if (ss.ss_family != family) return tzorp_throw_type(env, "socket: bindHost does not match the family");
    do_bind = true;
  } else if (port != 0) {
    tzorp_make_addr(family == AF_INET6 ? "::" : "0.0.0.0", (int)port, &ss, &len);
    do_bind = true;
  }
  int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return tzorp_throw_errno(env, "socket", errno);
  if ((flags & SOCKET_TRANSPARENT) && set_transparent(fd, family) < 0)
    return fail_close(env, fd, family == AF_INET6 ? "setsockopt(IPV6_TRANSPARENT)" : "setsockopt(IP_TRANSPARENT)");
  if (mark >= 0 && set_int_opt(fd, SOL_SOCKET, SO_MARK, (int)(uint32_t)mark) < 0)
    return fail_close(env, fd, "setsockopt(SO_MARK)");
  if ((flags & SOCKET_NODELAY) && set_int_opt(fd, IPPROTO_TCP, TCP_NODELAY, 1) < 0)
    return fail_close(env, fd, "setsockopt(TCP_NODELAY)");
  // TCP_QUICKACK 0 before connect(): the kernel holds the handshake's last ACK back (up to 200 ms) for
  // the first data the caller writes, which carries it (one packet fewer per connection).
  if ((flags & SOCKET_DEFER_ACK) && set_int_opt(fd, IPPROTO_TCP, TCP_QUICKACK, 0) < 0)
    return fail_close(env, fd, "setsockopt(TCP_QUICKACK)");
  if (do_bind) {
    if (port == 0) {
      // IP_BIND_ADDRESS_NO_PORT is an IPPROTO_IP option but works for IPv6 sockets too (Linux >= 4.2).
      if (set_int_opt(fd, SOL_IP, IP_BIND_ADDRESS_NO_PORT, 1) < 0)
        return fail_close(env, fd, "setsockopt(IP_BIND_ADDRESS_NO_PORT)");
    } else if ((flags & SOCKET_REUSEADDR) && set_int_opt(fd, SOL_SOCKET, SO_REUSEADDR, 1) < 0) {
      return fail_close(env, fd, "setsockopt(SO_REUSEADDR)");
    }
    if (bind(fd, (struct sockaddr *)&ss, len) < 0) return fail_close(env, fd, "bind");
  }
  return fd_value(env, fd);
}

static bool get_fd(napi_env env, napi_value v, int *fd) {
  int64_t n;
  if (!get_int(env, v, &n) || n < 0 || n > 0x7fffffff) return false;
  *fd = (int)n;
  return true;
}

// getMark(fd) -> number (unsigned 32-bit)
static napi_value GetMark(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv)) return NULL;
  int fd;
  if (!get_fd(env, argv[0], &fd)) return tzorp_throw_type(env, "getMark: fd must be a non-negative integer");
  uint32_t mark = 0;
  socklen_t len = sizeof mark;
  if (getsockopt(fd, SOL_SOCKET, SO_MARK, &mark, &len) < 0) return tzorp_throw_errno(env, "getsockopt(SO_MARK)", errno);
  napi_value r;
  napi_create_uint32(env, mark, &r);
  return r;
}

// setMark(fd, mark) -> undefined
static napi_value SetMark(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!get_args(env, info, 2, argv)) return NULL;
  int fd;
  int64_t mark;
  if (!get_fd(env, argv[0], &fd)) return tzorp_throw_type(env, "setMark: fd must be a non-negative integer");
  if (!get_int(env, argv[1], &mark) || mark < 0 || mark > 0xffffffffLL)
    return tzorp_throw_type(env, "setMark: mark must be 0..0xffffffff");
  uint32_t m = (uint32_t)mark;
  if (setsockopt(fd, SOL_SOCKET, SO_MARK, &m, sizeof m) < 0) return tzorp_throw_errno(env, "setsockopt(SO_MARK)", errno);
  return NULL;
}

// getTransparent(fd) -> boolean (IP_TRANSPARENT or IPV6_TRANSPARENT, by the socket's family)
static napi_value GetTransparent(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv)) return NULL;
  int fd;
  if (!get_fd(env, argv[0], &fd)) return tzorp_throw_type(env, "getTransparent: fd must be a non-negative integer");
  struct sockaddr_storage ss;
  socklen_t slen = sizeof ss;
  if (getsockname(fd, (struct sockaddr *)&ss, &slen) < 0) return tzorp_throw_errno(env, "getsockname", errno);
  int v = 0;
  socklen_t len = sizeof v;
  int rc = ss.ss_family == AF_INET6 ? getsockopt(fd, SOL_IPV6, IPV6_TRANSPARENT, &v, &len)
                                    : getsockopt(fd, SOL_IP, IP_TRANSPARENT, &v, &len);
  if (rc < 0)
    return tzorp_throw_errno(env, ss.ss_family == AF_INET6 ? "getsockopt(IPV6_TRANSPARENT)" : "getsockopt(IP_TRANSPARENT)",
                       errno);
  napi_value r;
  napi_get_boolean(env, v != 0, &r);
  return r;
}

// deferAcks(fd, on): TCP_QUICKACK 0 (on) or 1 on a socket. On a listening socket the setting is what
// every connection it accepts starts with (Linux copies it into the child): with it off, the kernel
// does not acknowledge a request at once but with the reply that follows it, as HAProxy does on its
// HTTP frontends. A connected socket leaves the mode again by itself when a delayed ACK times out.
static napi_value DeferAcks(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!get_args(env, info, 2, argv)) return NULL;
  int fd;
  bool on = false;
  if (!get_fd(env, argv[0], &fd) || napi_get_value_bool(env, argv[1], &on) != napi_ok)
    return tzorp_throw_type(env, "deferAcks(fd, on)");
  if (set_int_opt(fd, IPPROTO_TCP, TCP_QUICKACK, on ? 0 : 1) < 0)
    return tzorp_throw_errno(env, "setsockopt(TCP_QUICKACK)", errno);
  return NULL;
}

// getDeferAcks(fd) -> bool: TCP_QUICKACK reads 0 (the socket delays its ACKs for a reply to carry).
static napi_value GetDeferAcks(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv)) return NULL;
  int fd;
  if (!get_fd(env, argv[0], &fd)) return tzorp_throw_type(env, "getDeferAcks: fd must be a non-negative integer");
  int v = 0;
  socklen_t len = sizeof v;
  if (getsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &v, &len) < 0)
    return tzorp_throw_errno(env, "getsockopt(TCP_QUICKACK)", errno);
  napi_value r;
  napi_get_boolean(env, v == 0, &r);
  return r;
}

// addrs(fd) -> [localHost, localPort, remoteHost, remotePort] of a connected TCP socket in one call (two
// system calls, no address parsing in JavaScript: the text is canonical, tzorp_addr_text), or null when
// the socket is not connected (any more) or not IPv4/IPv6, undefined for a link-local address with a zone
// id (Node's getters name the interface). A bad fd throws (EBADF, ENOTSOCK).
static napi_value Addrs(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv)) return NULL;
  int fd;
  if (!get_fd(env, argv[0], &fd)) return tzorp_throw_type(env, "addrs: fd must be a non-negative integer");
  struct sockaddr_storage loc, peer;
  socklen_t ll = sizeof loc, pl = sizeof peer;
  napi_value r;
  if (getpeername(fd, (struct sockaddr *)&peer, &pl) < 0) {
    if (errno == ENOTCONN) {
      napi_get_null(env, &r);
      return r;
    }
    return tzorp_throw_errno(env, "getpeername", errno);
  }
  if (getsockname(fd, (struct sockaddr *)&loc, &ll) < 0) return tzorp_throw_errno(env, "getsockname", errno);
  char lh[TZORP_HOST_TEXT], rh[TZORP_HOST_TEXT];
  int lp, rp;
  if ((loc.ss_family == AF_INET6 && ((struct sockaddr_in6 *)&loc)->sin6_scope_id != 0) ||
      (peer.ss_family == AF_INET6 && ((struct sockaddr_in6 *)&peer)->sin6_scope_id != 0)) {
    napi_get_undefined(env, &r);  // a zone id (link-local): JavaScript asks Node, which names it
    return r;
  }
  tzorp_addr_text(&loc, lh, &lp);
  tzorp_addr_text(&peer, rh, &rp);
  if (!lh[0] || !rh[0]) {
    napi_get_null(env, &r);
    return r;
  }
  napi_value v;
  napi_create_array_with_length(env, 4, &r);
  napi_create_string_latin1(env, lh, NAPI_AUTO_LENGTH, &v);
  napi_set_element(env, r, 0, v);
  napi_create_uint32(env, (uint32_t)lp, &v);
  napi_set_element(env, r, 1, v);
  napi_create_string_latin1(env, rh, NAPI_AUTO_LENGTH, &v);
  napi_set_element(env, r, 2, v);
  napi_create_uint32(env, (uint32_t)rp, &v);
  napi_set_element(env, r, 3, v);
  return r;
}

// close(fd, reset?) -> undefined (an fd from listen()/socket()/ioListen that was never handed to
// Node); reset: SO_LINGER 0 first, so a connected socket is closed with a RST.
static napi_value Close(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!get_args(env, info, 2, argv)) return NULL;
  int fd;
  if (!get_fd(env, argv[0], &fd)) return tzorp_throw_type(env, "close: fd must be a non-negative integer");
  if (get_flag_value(env, argv[1])) {
    struct linger l = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  }
  if (close(fd) < 0) return tzorp_throw_errno(env, "close", errno);
  return NULL;
}

// resetOnClose(fd) -> undefined: SO_LINGER 0 on a socket Node owns, so that its close sends a RST.
// For a TCP socket under node's TLS layer, which cannot be reset through Node (resetAndDestroy on the
// TCP socket while the TLS layer still uses it crashes the process): set this, then destroy the TLS
// socket, which closes the TCP socket under it.
static napi_value ResetOnClose(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv)) return NULL;
  int fd;
  if (!get_fd(env, argv[0], &fd)) return tzorp_throw_type(env, "resetOnClose: fd must be a non-negative integer");
  struct linger l = {1, 0};
  if (setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l) < 0) return tzorp_throw_errno(env, "setsockopt", errno);
  return NULL;
}

napi_value tzorp_privs_init(napi_env env, napi_value exports);  // tzorp_privs.c
// tzorp_relay.c: the native splice relay and the descriptor limit (issue 14).
void tzorp_relay_register(napi_env env, napi_value exports);
// tzorp_nflog.c: the NFLOG socket the daemon reads the kernel's log of forwarded/denied connections from.
void tzorp_nflog_register(napi_env env, napi_value exports);
// tzorp_io.c: socket I/O on the main loop without net.Socket (issue 14).
void tzorp_io_register(napi_env env, napi_value exports);
// tzorp_memory.cc: giving start-up memory back to the system (V8's low-memory collection, malloc_trim).
void tzorp_memory_register(napi_env env, napi_value exports);

static napi_value Init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"listen", NULL, Listen, NULL, NULL, NULL, napi_enumerable, NULL},
      {"socket", NULL, Socket, NULL, NULL, NULL, napi_enumerable, NULL},
      {"getMark", NULL, GetMark, NULL, NULL, NULL, napi_enumerable, NULL},
      {"addrs", NULL, Addrs, NULL, NULL, NULL, napi_enumerable, NULL},
      {"addrText", NULL, AddrText, NULL, NULL, NULL, napi_enumerable, NULL},
      {"setMark", NULL, SetMark, NULL, NULL, NULL, napi_enumerable, NULL},
      {"getTransparent", NULL, GetTransparent, NULL, NULL, NULL, napi_enumerable, NULL},
      {"deferAcks", NULL, DeferAcks, NULL, NULL, NULL, napi_enumerable, NULL},
      {"getDeferAcks", NULL, GetDeferAcks, NULL, NULL, NULL, napi_enumerable, NULL},
      {"close", NULL, Close, NULL, NULL, NULL, napi_enumerable, NULL},
      {"resetOnClose", NULL, ResetOnClose, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  tzorp_relay_register(env, exports);
  tzorp_nflog_register(env, exports);
  tzorp_io_register(env, exports);
  tzorp_memory_register(env, exports);
  return tzorp_privs_init(env, exports);
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
