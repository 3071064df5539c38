// Socket I/O on the main event loop without net.Socket (issue 14): a connection is a descriptor
// watched by a uv_poll handle of Node's own loop, read with read(2) and written with write(2) from
// JavaScript's calls. No stream state machine, no write requests, no handle objects: JavaScript
// (src/net/native-socket.ts) keeps what little state a connection needs.
//
// One JavaScript function receives every event: cb(id, kind, arg), kind 0 = bytes (arg: a Buffer),
// 1 = end of stream, 2 = error (arg: errno), 3 = writable. It runs through napi_make_callback, so
// process.nextTick and promise jobs run after it as after any of Node's own I/O callbacks.
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

typedef struct io_conn {
  uv_poll_t poll;
  int fd;
  int id;
  int events; // what the poll handle watches (UV_READABLE | UV_WRITABLE)
  bool open;
  bool listening; // a listening socket: readable means connections to accept (kind 4, arg: the fd)
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

static void deliver(io_conn *c, int kind, napi_value arg) {
  napi_env env = io_env;
  napi_value cb, recv, argv[3], result;
  napi_get_reference_value(env, io_cb, &cb);
  napi_get_global(env, &recv);
  napi_create_int32(env, c->id, &argv[0]);
  napi_create_int32(env, kind, &argv[1]);
  argv[2] = arg;
  if (napi_make_callback(env, io_async, recv, cb, 3, argv, &result) == napi_pending_exception) {
    // What a throw in an I/O callback of Node's own does: the process's uncaughtException.
    napi_value err;
    napi_get_and_clear_last_exception(env, &err);
    napi_fatal_exception(env, err);
  }
}

static void on_poll(uv_poll_t *h, int status, int events) {
  io_conn *c = (io_conn *)h->data;
  napi_handle_scope scope;
  napi_open_handle_scope(io_env, &scope);
  int id = c->id;
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
        deliver(c, 0, buf);
        if (conn_of(id) != c) goto out;
        continue;
      }
      if (n == 0) {
        c->events &= ~UV_READABLE;
        napi_value u;
        napi_get_undefined(io_env, &u);
        deliver(c, 1, u);
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
      deliver(c, 2, e);
    } else if (c->events) uv_poll_start(&c->poll, c->events, on_poll); // (libuv stopped it)
    goto out;
  }
  if (events & UV_WRITABLE) {
    napi_value u;
    napi_get_undefined(io_env, &u);
    deliver(c, 3, u);
    if (conn_of(id) != c) goto out; // closed by the callback
  }
  if ((events & UV_READABLE) && (c->events & UV_READABLE) && c->listening) {
    for (int i = 0; i < 64; i++) {
      int fd = accept4(c->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) break;
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      napi_value v;
      napi_create_int32(io_env, fd, &v);
      deliver(c, 4, v);
      if (conn_of(id) != c) break;
    }
  } else if ((events & UV_READABLE) && (c->events & UV_READABLE)) {
    ssize_t n = read(c->fd, read_buf, sizeof read_buf);
    if (n > 0) {
      napi_value buf;
      void *data;
      napi_create_buffer_copy(io_env, (size_t)n, read_buf, &data, &buf);
      deliver(c, 0, buf);
    } else if (n == 0) {
      // The end: stop watching for reads (the descriptor stays readable at EOF).
      c->events &= ~UV_READABLE;
      if (c->events) uv_poll_start(&c->poll, c->events, on_poll);
      else uv_poll_stop(&c->poll);
      napi_value u;
      napi_get_undefined(io_env, &u);
      deliver(c, 1, u);
    } else if (errno != EAGAIN && errno != EINTR) {
      int err = errno;
      c->events &= ~UV_READABLE;
      if (c->events) uv_poll_start(&c->poll, c->events, on_poll);
      else uv_poll_stop(&c->poll);
      napi_value e;
      napi_create_int32(io_env, err, &e);
      deliver(c, 2, e);
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

// ioInit(cb): the one receiver of every event.
static napi_value IoInit(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
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

// ioOpen(fd, listening, noDelay) -> id: watch a socket (made non-blocking; nothing is watched until
// ioSet). noDelay: TCP_NODELAY on it now.
static napi_value IoOpen(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int fd;
  if (argc < 1 || !arg_int(env, argv[0], &fd) || fd < 0) return tzorp_throw_type(env, "ioOpen(fd)");
  if (!io_env) return tzorp_throw_type(env, "ioOpen before ioInit");
  int id;
  if (nfree > 0) id = free_ids[--nfree];
  else {
    if (nconns >= IO_MAX) return tzorp_throw_errno(env, "ioOpen", EMFILE);
    io_conn **grown = realloc(conns, sizeof(io_conn *) * (size_t)(nconns + 1));
    int *fgrown = realloc(free_ids, sizeof(int) * (size_t)(nconns + 1));
    if (!grown || !fgrown) {
      if (grown) conns = grown;
      if (fgrown) free_ids = fgrown;
      return tzorp_throw_errno(env, "realloc", ENOMEM);
    }
    conns = grown;
    free_ids = fgrown;
    id = nconns++;
    conns[id] = NULL;
  }
  io_conn *c = calloc(1, sizeof *c);
  if (!c) {
    free_ids[nfree++] = id;
    return tzorp_throw_errno(env, "calloc", ENOMEM);
  }
  uv_loop_t *loop;
  napi_get_uv_event_loop(env, &loop);
  int r = uv_poll_init_socket(loop, &c->poll, fd);
  if (r < 0) {
    free(c);
    free_ids[nfree++] = id;
    return tzorp_throw_errno(env, "uv_poll_init", -r);
  }
  c->poll.data = c;
  c->fd = fd;
  c->id = id;
  c->open = true;
  if (argc >= 2) napi_get_value_bool(env, argv[1], &c->listening);
  bool nodelay = false;
  if (argc >= 3) napi_get_value_bool(env, argv[2], &nodelay);
  if (nodelay) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  int fl = fcntl(fd, F_GETFL);
  if (fl >= 0 && !(fl & O_NONBLOCK)) fcntl(fd, F_SETFL, fl | O_NONBLOCK);
  conns[id] = c;
  napi_value out;
  napi_create_int32(env, id, &out);
  return out;
}

// ioSet(id, readable, writable): what to watch.
static napi_value IoSet(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
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
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
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
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
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
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
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

static void on_closed(uv_handle_t *h) { free(h->data); }

// ioClose(id, reset): stop watching, close the descriptor (reset: RST instead of FIN). The id is free
// again at once; no event of the connection comes after this.
static napi_value IoClose(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
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
      {"ioSet", NULL, IoSet, NULL, NULL, NULL, napi_enumerable, NULL},
      {"ioWrite", NULL, IoWrite, NULL, NULL, NULL, napi_enumerable, NULL},
      {"ioConnect", NULL, IoConnect, NULL, NULL, NULL, napi_enumerable, NULL},
      {"ioSoError", NULL, IoSoError, NULL, NULL, NULL, napi_enumerable, NULL},
      {"ioShutdown", NULL, IoShutdown, NULL, NULL, NULL, napi_enumerable, NULL},
      {"ioClose", NULL, IoClose, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
