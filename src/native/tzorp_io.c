// Socket I/O on the main event loop without net.Socket (issue 14): a connection is a descriptor
// watched by a uv_poll handle of Node's own loop, read with read(2) and written with write(2) from
// JavaScript's calls. No stream state machine, no write requests, no handle objects: JavaScript
// (src/net/native-socket.ts) keeps what little state a connection needs.
//
// One JavaScript function receives every event: cb(id, kind, arg, ...), kind 0 = bytes (arg: a
// Buffer), 1 = end of stream, 2 = error (arg: errno), 3 = writable; on a listening socket (ioListen)
// 4 = accepted (arg: the descriptor, then peerHost, peerPort, localHost, localPort, mark | null) and
// 5 = an accept failed for want of descriptors or memory (arg: errno; the listener pauses for
// IO_ACCEPT_PAUSE_MS instead of spinning on a backlog it cannot take). It runs through
// napi_make_callback, so process.nextTick and promise jobs run after it as after any of Node's own I/O
// callbacks.
//
// Accepting here, on the loop that runs the sessions, costs a connection no hop between threads: the
// relay thread's accept (tzorp_relay.c before) woke that thread, then the main loop through a
// threadsafe function, for every batch.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "tzorp_errors.h"

#define IO_READ_CHUNK 65536
#define IO_MAX 1048576
#define IO_ACCEPT_BATCH 64
#define IO_ACCEPT_PAUSE_MS 100

typedef struct io_conn {
  uv_poll_t poll;
  int fd;
  int id;
  int events; // what the poll handle watches (UV_READABLE | UV_WRITABLE)
  bool open;
  bool listening;    // a listening socket (ioListen): readable means connections to accept
  uv_timer_t *pause; // a listener's: resumes it after an accept failed for want of descriptors
} io_conn;

static napi_env io_env = NULL;
static napi_ref io_cb = NULL;
static napi_async_context io_async = NULL;
static io_conn **conns = NULL;
static int nconns = 0;
static int *free_ids = NULL;
static int nfree = 0;
static char read_buf[IO_READ_CHUNK];

static io_conn *conn_of(int id) {
  if (id < 0 || id >= nconns) return NULL;
  io_conn *c = conns[id];
  return c && c->open ? c : NULL;
}

// cb(id, kind, arg, ...more): `nmore` values after `arg` (an accepted connection's addresses and mark).
static void deliver(io_conn *c, int kind, napi_value arg, int nmore, const napi_value *more) {
  napi_env env = io_env;
  napi_value cb, recv, argv[8], result;
  napi_get_reference_value(env, io_cb, &cb);
  napi_get_global(env, &recv);
  napi_create_int32(env, c->id, &argv[0]);
  napi_create_int32(env, kind, &argv[1]);
  argv[2] = arg;
  for (int i = 0; i < nmore && i < 5; i++) argv[3 + i] = more[i];
  if (napi_make_callback(env, io_async, recv, cb, 3 + (size_t)(nmore < 5 ? nmore : 5), argv, &result) ==
      napi_pending_exception) {
    // What a throw in an I/O callback of Node's own does: the process's uncaughtException.
    napi_value err;
    napi_get_and_clear_last_exception(env, &err);
    napi_fatal_exception(env, err);
  }
}

static void on_poll(uv_poll_t *h, int status, int events);

static void on_resume(uv_timer_t *t) {
  io_conn *c = (io_conn *)t->data;
  if (c->open && c->events) uv_poll_start(&c->poll, c->events, on_poll);
}

// Stop watching a listener for IO_ACCEPT_PAUSE_MS (the connection waits in the backlog meanwhile) and
// tell JavaScript why (kind 5): level-triggered readiness would otherwise wake the loop at once again.
static void pause_listener(io_conn *c, int err) {
  uv_poll_stop(&c->poll);
  uv_timer_start(c->pause, on_resume, IO_ACCEPT_PAUSE_MS, 0);
  napi_value e;
  napi_create_int32(io_env, err, &e);
  deliver(c, 5, e, 0, NULL);
}

// The listening socket is readable: accept up to IO_ACCEPT_BATCH connections (more come with the next
// readiness), each non-blocking, Nagle off, with its addresses and the SYN's mark (tcp_fwmark_accept).
static void accept_ready(io_conn *c) {
  int id = c->id;
  for (int i = 0; i < IO_ACCEPT_BATCH; i++) {
    struct sockaddr_storage peer, loc;
    socklen_t pl = sizeof peer, ll = sizeof loc;
    int fd = accept4(c->fd, (struct sockaddr *)&peer, &pl, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      int e = errno;
      if (e == EINTR || e == ECONNABORTED || e == EPROTO) continue;
      if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) pause_listener(c, e);
      return; // EAGAIN, or anything else: wait for the next readiness
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    char ph[TZORP_HOST_TEXT], lh[TZORP_HOST_TEXT];
    int pp = 0, lp = 0;
    tzorp_addr_text(&peer, ph, &pp);
    if (getsockname(fd, (struct sockaddr *)&loc, &ll) == 0) tzorp_addr_text(&loc, lh, &lp);
    else lh[0] = 0; // (reset before it could be read: JavaScript closes it)
    uint32_t mark = 0;
    socklen_t ml = sizeof mark;
    napi_value more[5];
    napi_env env = io_env;
    napi_value v;
    napi_create_int32(env, fd, &v);
    napi_create_string_utf8(env, ph, NAPI_AUTO_LENGTH, &more[0]);
    napi_create_int32(env, pp, &more[1]);
    napi_create_string_utf8(env, lh, NAPI_AUTO_LENGTH, &more[2]);
    napi_create_int32(env, lp, &more[3]);
    if (getsockopt(fd, SOL_SOCKET, SO_MARK, &mark, &ml) == 0) napi_create_double(env, (double)mark, &more[4]);
    else napi_get_null(env, &more[4]);
    deliver(c, 4, v, 5, more);
    if (conn_of(id) != c) return; // stopped by the callback
  }
}

static void on_poll(uv_poll_t *h, int status, int events) {
  io_conn *c = (io_conn *)h->data;
  napi_handle_scope scope;
  napi_open_handle_scope(io_env, &scope);
  int id = c->id;
  if (status < 0 && c->listening) {
    pause_listener(c, -status); // (not seen on a listening socket; a pause, not a spin, if it is)
    goto out;
  }
  if (status < 0) {
    // libuv reports POLLERR as UV_EBADF and has stopped the handle. While the connection is read, what
    // arrived before the error is read first (as a stream's read does: a reset after a response's
    // first bytes must not lose them), and the read's error ends it. Otherwise (writes waiting, a
    // connect) the socket's own error is the answer: ECONNREFUSED, ECONNRESET, EPIPE.
    int err = 0;
    while (c->events & UV_READABLE) {
      ssize_t n = read(c->fd, read_buf, sizeof read_buf);
      if (n > 0) {
        napi_value buf;
        void *data;
        napi_create_buffer_copy(io_env, (size_t)n, read_buf, &data, &buf);
        deliver(c, 0, buf, 0, NULL);
        if (conn_of(id) != c) goto out;
        continue;
      }
      if (n == 0) {
        c->events &= ~UV_READABLE;
        napi_value u;
        napi_get_undefined(io_env, &u);
        deliver(c, 1, u, 0, NULL);
        if (conn_of(id) != c) goto out;
        break;
      }
      if (errno == EINTR) continue;
      if (errno != EAGAIN) err = errno;
      break;
    }
    if (!err && c->events && !(c->events & UV_READABLE)) {
      int soerr = 0;
      socklen_t l = sizeof soerr;
      err = getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &l) == 0 && soerr != 0 ? soerr : -status;
    }
    if (err) {
      c->events = 0;
      uv_poll_stop(&c->poll);
      napi_value e;
      napi_create_int32(io_env, err, &e);
      deliver(c, 2, e, 0, NULL);
    } else if (c->events) uv_poll_start(&c->poll, c->events, on_poll); // (libuv stopped it)
    goto out;
  }
  if (events & UV_WRITABLE) {
    napi_value u;
    napi_get_undefined(io_env, &u);
    deliver(c, 3, u, 0, NULL);
    if (conn_of(id) != c) goto out; // closed by the callback
  }
  if ((events & UV_READABLE) && (c->events & UV_READABLE) && c->listening) {
    accept_ready(c);
  } else if ((events & UV_READABLE) && (c->events & UV_READABLE)) {
    ssize_t n = read(c->fd, read_buf, sizeof read_buf);
    if (n > 0) {
      napi_value buf;
      void *data;
      napi_create_buffer_copy(io_env, (size_t)n, read_buf, &data, &buf);
      deliver(c, 0, buf, 0, NULL);
    } else if (n == 0) {
      // The end: stop watching for reads (the descriptor stays readable at EOF).
      c->events &= ~UV_READABLE;
      if (c->events) uv_poll_start(&c->poll, c->events, on_poll);
      else uv_poll_stop(&c->poll);
      napi_value u;
      napi_get_undefined(io_env, &u);
      deliver(c, 1, u, 0, NULL);
    } else if (errno != EAGAIN && errno != EINTR) {
      int err = errno;
      c->events &= ~UV_READABLE;
      if (c->events) uv_poll_start(&c->poll, c->events, on_poll);
      else uv_poll_stop(&c->poll);
      napi_value e;
      napi_create_int32(io_env, err, &e);
      deliver(c, 2, e, 0, NULL);
    }
  }
out:
  napi_close_handle_scope(io_env, scope);
}

static bool arg_int(napi_env env, napi_value v, int *out) {
  return napi_get_value_int32(env, v, out) == napi_ok;
}

static napi_value int_value(napi_env env, int v) {
  napi_value out;
  napi_create_int32(env, v, &out);
  return out;
}

// A call's first `n` arguments into argv (the rest undefined); returns how many were given.
static size_t io_args(napi_env env, napi_callback_info info, size_t n, napi_value *argv) {
  size_t argc = n;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  return argc;
}

static void on_closed(uv_handle_t *h) { free(h->data); }

// ioInit(cb): the one receiver of every event.
static napi_value IoInit(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  size_t argc = io_args(env, info, 1, argv);
  napi_valuetype t;
  if (argc < 1 || napi_typeof(env, argv[0], &t) != napi_ok || t != napi_function)
    return tzorp_throw_type(env, "ioInit(cb)");
  if (io_cb) napi_delete_reference(env, io_cb);
  io_env = env;
  napi_create_reference(env, argv[0], 1, &io_cb);
  if (!io_async) {
    napi_value name;
    napi_create_string_utf8(env, "tzorp.io", NAPI_AUTO_LENGTH, &name);
    napi_async_init(env, NULL, name, &io_async);
  }
  return NULL;
}

// A new watched connection for `fd` (made non-blocking), or NULL with an exception pending.
static io_conn *new_conn(napi_env env, int fd) {
  int id;
  if (nfree > 0) id = free_ids[--nfree];
  else {
    if (nconns >= IO_MAX) return (io_conn *)tzorp_throw_errno(env, "ioOpen", EMFILE);
    io_conn **grown = realloc(conns, sizeof(io_conn *) * (size_t)(nconns + 1));
    int *fgrown = realloc(free_ids, sizeof(int) * (size_t)(nconns + 1));
    if (grown) conns = grown;
    if (fgrown) free_ids = fgrown;
    if (!grown || !fgrown) return (io_conn *)tzorp_throw_errno(env, "realloc", ENOMEM);
    id = nconns++;
    conns[id] = NULL;
  }
  io_conn *c = calloc(1, sizeof *c);
  if (!c) {
    free_ids[nfree++] = id;
    return (io_conn *)tzorp_throw_errno(env, "calloc", ENOMEM);
  }
  uv_loop_t *loop;
  napi_get_uv_event_loop(env, &loop);
  int r = uv_poll_init_socket(loop, &c->poll, fd);
  if (r < 0) {
    free(c);
    free_ids[nfree++] = id;
    return (io_conn *)tzorp_throw_errno(env, "uv_poll_init", -r);
  }
  c->poll.data = c;
  c->fd = fd;
  c->id = id;
  c->open = true;
  int fl = fcntl(fd, F_GETFL);
  if (fl >= 0 && !(fl & O_NONBLOCK)) fcntl(fd, F_SETFL, fl | O_NONBLOCK);
  conns[id] = c;
  return c;
}

// ioOpen(fd, noDelay) -> id: watch a socket (made non-blocking; nothing is watched until ioSet).
// noDelay: TCP_NODELAY on it now.
static napi_value IoOpen(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  size_t argc = io_args(env, info, 2, argv);
  int fd;
  if (argc < 1 || !arg_int(env, argv[0], &fd) || fd < 0) return tzorp_throw_type(env, "ioOpen(fd, noDelay)");
  if (!io_env) return tzorp_throw_type(env, "ioOpen before ioInit");
  bool nodelay = false;
  if (argc >= 2) napi_get_value_bool(env, argv[1], &nodelay);
  io_conn *c = new_conn(env, fd);
  if (!c) return NULL;
  if (nodelay) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  return int_value(env, c->id);
}

static void on_timer_closed(uv_handle_t *h) { free(h); }

// ioListen(fd) -> id: accept on a dup of `fd` (a listening socket; the caller may close its own) on
// this loop: kind 4 per connection, kind 5 when the listener pauses. ioClose(id) stops it. Every
// worker sharing the socket is woken for a connection and one accept4() wins, as with libuv's own.
static napi_value IoListen(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  size_t argc = io_args(env, info, 1, argv);
  int lf;
  if (argc < 1 || !arg_int(env, argv[0], &lf) || lf < 0) return tzorp_throw_type(env, "ioListen(fd)");
  if (!io_env) return tzorp_throw_type(env, "ioListen before ioInit");
  int fd = fcntl(lf, F_DUPFD_CLOEXEC, 0);
  if (fd < 0) return tzorp_throw_errno(env, "dup", errno);
  uv_timer_t *t = malloc(sizeof *t);
  if (!t) {
    close(fd);
    return tzorp_throw_errno(env, "malloc", ENOMEM);
  }
  io_conn *c = new_conn(env, fd);
  if (!c) {
    free(t);
    close(fd);
    return NULL;
  }
  uv_loop_t *loop;
  napi_get_uv_event_loop(env, &loop);
  uv_timer_init(loop, t);
  t->data = c;
  c->pause = t;
  c->listening = true;
  c->events = UV_READABLE;
  int r = uv_poll_start(&c->poll, UV_READABLE, on_poll);
  if (r < 0) {
    c->open = false;
    conns[c->id] = NULL;
    free_ids[nfree++] = c->id;
    uv_close((uv_handle_t *)t, on_timer_closed);
    close(fd);
    uv_close((uv_handle_t *)&c->poll, on_closed);
    return tzorp_throw_errno(env, "uv_poll_start", -r);
  }
  return int_value(env, c->id);
}

// ioSet(id, readable, writable): what to watch.
static napi_value IoSet(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  size_t argc = io_args(env, info, 3, argv);
  int id;
  bool rd = false, wr = false;
  if (argc < 3 || !arg_int(env, argv[0], &id) || napi_get_value_bool(env, argv[1], &rd) != napi_ok ||
      napi_get_value_bool(env, argv[2], &wr) != napi_ok)
    return tzorp_throw_type(env, "ioSet(id, readable, writable)");
  io_conn *c = conn_of(id);
  if (!c) return NULL;
  int ev = (rd ? UV_READABLE : 0) | (wr ? UV_WRITABLE : 0);
  if (ev == c->events) return NULL;
  c->events = ev;
  int r = ev ? uv_poll_start(&c->poll, ev, on_poll) : uv_poll_stop(&c->poll);
  if (r < 0) return tzorp_throw_errno(env, "uv_poll_start", -r);
  return NULL;
}

// ioWrite(id, buffer, offset) -> bytes written (0 when the socket takes none now), or -errno.
static napi_value IoWrite(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  size_t argc = io_args(env, info, 3, argv);
  int id, off = 0;
  void *data;
  size_t len;
  if (argc < 2 || !arg_int(env, argv[0], &id) || napi_get_buffer_info(env, argv[1], &data, &len) != napi_ok)
    return tzorp_throw_type(env, "ioWrite(id, buffer, offset)");
  if (argc >= 3) arg_int(env, argv[2], &off);
  io_conn *c = conn_of(id);
  ssize_t n;
  if (!c) n = -EBADF;
  else if (off < 0 || (size_t)off > len) n = -EINVAL;
  else {
    n = send(c->fd, (char *)data + off, len - (size_t)off, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0) n = (errno == EAGAIN || errno == EINTR) ? 0 : -errno;
  }
  napi_value out;
  napi_create_int64(env, (int64_t)n, &out);
  return out;
}

// ioConnect(id, host, port) -> 0 connected, 1 in progress (wait for writable), or -errno.
static napi_value IoConnect(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  size_t argc = io_args(env, info, 3, argv);
  int id, port;
  char host[TZORP_HOST_TEXT];
  size_t hl;
  if (argc < 3 || !arg_int(env, argv[0], &id) ||
      napi_get_value_string_utf8(env, argv[1], host, sizeof host, &hl) != napi_ok || !arg_int(env, argv[2], &port))
    return tzorp_throw_type(env, "ioConnect(id, host, port)");
  struct sockaddr_storage ss;
  socklen_t sl;
  if (!tzorp_make_addr(host, port, &ss, &sl)) return tzorp_throw_type(env, "ioConnect: not an address");
  io_conn *c = conn_of(id);
  int r;
  if (!c) r = -EBADF;
  else if (connect(c->fd, (struct sockaddr *)&ss, sl) == 0) r = 0;
  else r = errno == EINPROGRESS ? 1 : -errno;
  return int_value(env, r);
}

// The connection a one-argument call names (`*ok` false: a TypeError is pending; NULL: no such
// connection, closed).
static io_conn *conn_arg(napi_env env, napi_callback_info info, const char *usage, bool *ok) {
  napi_value argv[1];
  size_t argc = io_args(env, info, 1, argv);
  int id;
  *ok = argc >= 1 && arg_int(env, argv[0], &id);
  if (!*ok) {
    tzorp_throw_type(env, usage);
    return NULL;
  }
  return conn_of(id);
}

// ioSoError(id) -> the socket's pending error (0: none; after a connect, 0 = connected).
static napi_value IoSoError(napi_env env, napi_callback_info info) {
  bool ok;
  io_conn *c = conn_arg(env, info, "ioSoError(id)", &ok);
  if (!ok) return NULL;
  int e = EBADF;
  if (c) {
    socklen_t l = sizeof e;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e, &l) < 0) e = errno;
  }
  return int_value(env, e);
}

// ioShutdown(id) -> 0 or errno: FIN after what the socket holds.
static napi_value IoShutdown(napi_env env, napi_callback_info info) {
  bool ok;
  io_conn *c = conn_arg(env, info, "ioShutdown(id)", &ok);
  if (!ok) return NULL;
  return int_value(env, !c ? EBADF : shutdown(c->fd, SHUT_WR) < 0 ? errno : 0);
}

// ioClose(id, reset): stop watching, close the descriptor (reset: RST instead of FIN). The id is free
// again at once; no event of the connection comes after this.
static napi_value IoClose(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  size_t argc = io_args(env, info, 2, argv);
  int id;
  bool reset = false;
  if (argc < 1 || !arg_int(env, argv[0], &id)) return tzorp_throw_type(env, "ioClose(id, reset)");
  if (argc >= 2) napi_get_value_bool(env, argv[1], &reset);
  io_conn *c = conn_of(id);
  if (!c) return NULL;
  c->open = false;
  conns[id] = NULL;
  free_ids[nfree++] = id;
  uv_poll_stop(&c->poll);
  if (c->pause) uv_close((uv_handle_t *)c->pause, on_timer_closed);
  if (reset) {
    struct linger l = {1, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  }
  close(c->fd);
  uv_close((uv_handle_t *)&c->poll, on_closed);
  return NULL;
}

void tzorp_io_register(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"ioInit", NULL, IoInit, NULL, NULL, NULL, napi_enumerable, NULL},
      {"ioOpen", NULL, IoOpen, NULL, NULL, NULL, napi_enumerable, NULL},
      {"ioListen", NULL, IoListen, NULL, NULL, NULL, napi_enumerable, NULL},
      {"ioSet", NULL, IoSet, NULL, NULL, NULL, napi_enumerable, NULL},
      {"ioWrite", NULL, IoWrite, NULL, NULL, NULL, napi_enumerable, NULL},
      {"ioConnect", NULL, IoConnect, NULL, NULL, NULL, napi_enumerable, NULL},
      {"ioSoError", NULL, IoSoError, NULL, NULL, NULL, napi_enumerable, NULL},
      {"ioShutdown", NULL, IoShutdown, NULL, NULL, NULL, napi_enumerable, NULL},
      {"ioClose", NULL, IoClose, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
