// Socket I/O on the main event loop without net.Socket (issue 14): a connection is a descriptor in the
// addon's own epoll set, which is watched by one uv_poll handle of Node's loop; bytes are read with
// read(2) and written with send(2) from JavaScript's calls. No stream state machine, no write requests,
// no handle objects: JavaScript (src/net/native-socket.ts) keeps what little state a connection needs.
//
// One JavaScript function receives every event: cb(id, kind, arg, ...), kind 0 = bytes (arg: how
// many, read into the buffer JavaScript gave ioInit; JavaScript copies them out before the callback
// returns, since the next read overwrites them), 1 = end of stream, 2 = error (arg: errno), 3 = writable; on a listening socket (ioListen)
// 4 = accepted (arg: the descriptor, then peerHost, peerPort, localHost, localPort, mark | null) and
// 5 = an accept failed for want of descriptors or memory (arg: errno; the listener pauses for
// IO_ACCEPT_PAUSE_MS instead of spinning on a backlog it cannot take). It runs through
// napi_make_callback, so process.nextTick and promise jobs run after it as after any of Node's own I/O
// callbacks.
//
// Why an epoll set of our own, edge-triggered: a uv_poll handle per connection made libuv call
// epoll_ctl at every change of interest and twice more at its end (stop, close), 15 calls per proxied
// HTTP connection against HAProxy's 2 (bench/README.md). Here a descriptor is added once; what the
// kernel said is ready is remembered (`ready`) until a call meets EAGAIN, so JavaScript pausing and
// resuming a connection costs no system call; the set is modified only to watch writability while
// bytes wait or a connect runs, and to stop watching a descriptor a relay handover took. A closed
// descriptor leaves the set by itself (except when a dup lives on: `shared`, `listening`).
//
// Accepting here, on the loop that runs the sessions, costs a connection no hop between threads: the
// relay thread's accept (tzorp_relay.c before) woke that thread, then the main loop through a
// threadsafe function, for every batch.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "tzorp_errors.h"

#define IO_READ_CHUNK 65536
#define IO_MAX 1048576
#define IO_ACCEPT_BATCH 64
#define IO_ACCEPT_PAUSE_MS 100
#define IO_EVENTS 256

#ifndef SO_MARK
#define SO_MARK 36
#endif

// `want` (what JavaScript asked for) and `ready` (what the kernel reported and no call has used up).
#define W_READ 1
#define W_WRITE 2
#define R_ERR 4

typedef struct io_conn {
  int fd;
  int id;
  uint32_t gen;      // told apart from an earlier holder of the id in events already fetched
  int want;          // W_READ | W_WRITE
  int ready;         // W_READ | W_WRITE | R_ERR
  uint32_t watched;  // the epoll events the set has for it
  bool added;        // in the set (from the first ioSet on: a socket closed unwatched costs no call)
  bool open;
  bool eof;          // read() gave 0: nothing more to read
  bool hup;          // the peer's FIN (or a hang-up) was reported: read on to the end, short reads or not
  bool counted;      // keeps the loop alive (liveness): open, and wanted or listening
  bool held;         // a relay handover has the descriptor: not watched (ioHold)
  bool shared;       // a dup may live on after ioClose: leave the set explicitly
  bool listening;    // a listening socket (ioListen): readable means connections to accept
  bool paused;       // a listener waiting out IO_ACCEPT_PAUSE_MS
  bool nodelay;      // a listener with TCP_NODELAY: the connections it accepts inherit it (no call each)
  bool pending;      // in the pending list (events to deliver on the next turn of the loop)
  uv_timer_t *pause; // a listener's: resumes it after an accept failed for want of descriptors
} io_conn;

static napi_env io_env = NULL;
static napi_ref io_cb = NULL;
static napi_async_context io_async = NULL;
static io_conn **conns = NULL;
static int nconns = 0;
static int *free_ids = NULL;
static int nfree = 0;
static uint32_t next_gen = 1;
// Where reads land: the buffer JavaScript gave ioInit (kept alive by io_read_ref). JavaScript copies
// each read into a Buffer of its own (Buffer.allocUnsafe: a slice of Node's pool for small reads)
// before anything else; a Buffer made here per read cost a backing store from malloc, a prototype set
// in C++ and an ArrayBuffer for the sweeper to track, several times what the copy costs.
static char *read_buf = NULL;
static size_t read_len = 0;
static napi_ref io_read_ref = NULL;
static int ep = -1;        // our epoll set
static uv_poll_t ep_poll;  // Node's loop watching it
static uv_idle_t ep_idle;  // runs the pending list (while it is not empty)

// The pending list is two arrays that swap: make_pending adds to `pending` while on_idle runs
// `running`, so what a callback delivered from the run makes pending (the same connection or another)
// lands in the other array, for the next turn, and the array being run never changes under it. Each
// keeps its memory and grows with realloc only when full: no allocation on a turn of the loop. An entry
// is the connection's gen and id (as the set's events are), so an id closed and given to a new
// connection before the run is not run for the old one's events.
typedef struct {
  uint64_t *ids;
  int n, cap;
} id_list;

static id_list id_lists[2];
static id_list *pending = &id_lists[0]; // new events are added here
static id_list *running = &id_lists[1]; // on_idle runs this one (empty between runs)

static io_conn *conn_of(int id) {
  if (id < 0 || id >= nconns) return NULL;
  io_conn *c = conns[id];
  return c && c->open ? c : NULL;
}

static uint64_t tag_of(io_conn *c) { return ((uint64_t)c->gen << 32) | (uint32_t)c->id; }

// The connection an entry (of the pending lists, or an event's data) names, if it is still that one.
static io_conn *conn_of_tag(uint64_t tag) {
  io_conn *c = conn_of((int)(uint32_t)tag);
  return c && c->gen == (uint32_t)(tag >> 32) ? c : NULL;
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
  int nm = nmore < 5 ? nmore : 5;
  for (int i = 0; i < nm; i++) argv[3 + i] = more[i];
  if (napi_make_callback(env, io_async, recv, cb, 3 + (size_t)nm, argv, &result) == napi_pending_exception) {
    // What a throw in an I/O callback of Node's own does: the process's uncaughtException.
    napi_value err;
    napi_get_and_clear_last_exception(env, &err);
    napi_fatal_exception(env, err);
  }
}

static void deliver_int(io_conn *c, int kind, int v) {
  napi_value a;
  if (kind == 1) napi_get_undefined(io_env, &a);
  else napi_create_int32(io_env, v, &a);
  deliver(c, kind, a, 0, NULL);
}

static void on_idle(uv_idle_t *h);

// The loop stays alive while a listener is open or a connection waits for something it wants, as
// Node's own handles keep it (a socket paused and idle does not).
static int nactive = 0;
static void liveness(io_conn *c) {
  bool on = c->open && (c->listening || (c->want && !c->held));
  if (on == c->counted) return;
  c->counted = on;
  int was = nactive;
  nactive += on ? 1 : -1;
  if (was == 0 && nactive > 0) uv_ref((uv_handle_t *)&ep_poll);
  else if (was > 0 && nactive == 0) uv_unref((uv_handle_t *)&ep_poll);
}

// Deliver `c`'s events on the next turn of the loop (never from inside a JavaScript call).
static void make_pending(io_conn *c) {
  if (c->pending) return;
  id_list *l = pending;
  if (l->n == l->cap) {
    int n = l->cap ? l->cap * 2 : 64;
    uint64_t *g = realloc(l->ids, sizeof(uint64_t) * (size_t)n);
    if (!g) return; // (the next event of the descriptor comes through the set)
    l->ids = g;
    l->cap = n;
  }
  c->pending = true;
  l->ids[l->n++] = tag_of(c);
  if (l->n == 1) uv_idle_start(&ep_idle, on_idle);
}

// What the set watches for `c`: reads always (their readiness is remembered while not wanted);
// writability from the first time JavaScript waits for it on (an edge comes only after a send that met
// a full buffer, so watching on costs nothing and saves changing the set back); nothing while a relay
// handover has the descriptor.
static int watch(io_conn *c) {
  uint32_t ev = c->held ? 0
                        : (EPOLLIN | EPOLLRDHUP | (c->watched & EPOLLOUT) | ((c->want & W_WRITE) ? EPOLLOUT : 0));
  if (ev == c->watched && c->added) return 0;
  if (!c->added && !c->want) return 0;
  struct epoll_event e = {.events = ev | EPOLLET, .data.u64 = tag_of(c)};
  if (epoll_ctl(ep, c->added ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c->fd, &e) < 0) return errno;
  c->added = true;
  c->watched = ev;
  return 0;
}

static void on_resume(uv_timer_t *t) {
  io_conn *c = (io_conn *)t->data;
  c->paused = false;
  if (c->open) make_pending(c); // (readiness was not used up: accept goes on)
}

// Stop accepting for IO_ACCEPT_PAUSE_MS (the connection waits in the backlog meanwhile) and tell
// JavaScript why (kind 5).
static void pause_listener(io_conn *c, int err) {
  c->paused = true;
  uv_timer_start(c->pause, on_resume, IO_ACCEPT_PAUSE_MS, 0);
  deliver_int(c, 5, err);
}

// Accept up to IO_ACCEPT_BATCH connections (then the rest on the next turn), each non-blocking, Nagle
// off, with its addresses and the SYN's mark (tcp_fwmark_accept).
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
      else c->ready &= ~W_READ; // EAGAIN (or anything else): wait for the next connection's edge
      return;
    }
    if (!c->nodelay) {
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    char ph[TZORP_HOST_TEXT], lh[TZORP_HOST_TEXT];
    int pp = 0, lp = 0;
    tzorp_addr_text(&peer, ph, &pp);
    if (getsockname(fd, (struct sockaddr *)&loc, &ll) == 0) tzorp_addr_text(&loc, lh, &lp);
    else lh[0] = 0; // (reset before it could be read: JavaScript closes it)
    uint32_t mark = 0;
    socklen_t ml = sizeof mark;
    napi_env env = io_env;
    napi_value v, more[5];
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
  make_pending(c); // (a full batch: more may wait)
}

// What a read gave, delivered: the bytes (kind 0), the end (kind 1: nothing more is read), or an error
// (kind 2: nothing more is delivered).
static void deliver_bytes(io_conn *c, size_t n) { deliver_int(c, 0, (int)n); }

static void deliver_end(io_conn *c) {
  c->eof = true;
  c->ready &= ~W_READ;
  c->want &= ~W_READ; // (as JavaScript knows: nothing to read after the end)
  liveness(c);
  deliver_int(c, 1, 0);
}

static void deliver_error(io_conn *c, int err) {
  c->ready = 0;
  c->want = 0;
  liveness(c);
  deliver_int(c, 2, err);
}

// One read while reads are wanted and ready: bytes (kind 0), the end (1) or an error (2). A read that
// fills the buffer may leave more: the rest on the next turn.
static void read_ready(io_conn *c) {
  ssize_t n;
  do n = read(c->fd, read_buf, read_len);
  while (n < 0 && errno == EINTR);
  if (n > 0) {
    // A short read emptied the socket: more bytes bring a new edge. Not so the end: a FIN that came
    // with the bytes already had its edge, and only the next read() tells it.
    if ((size_t)n < read_len && !c->hup) c->ready &= ~W_READ;
    int id = c->id;
    deliver_bytes(c, (size_t)n);
    if (conn_of(id) == c && (c->ready & W_READ) && (c->want & W_READ)) make_pending(c);
  } else if (n == 0) deliver_end(c);
  else if (errno == EAGAIN) c->ready &= ~W_READ;
  else deliver_error(c, errno);
}

// An error reported by the set (EPOLLERR): while the connection is read, what arrived before the error
// is read first (as a stream's read does: a reset after a response's first bytes must not lose them),
// and the read's error ends it. Otherwise (writes waiting, a connect) the socket's own error is the
// answer: ECONNREFUSED, ECONNRESET, EPIPE.
static void error_ready(io_conn *c) {
  int id = c->id;
  while ((c->want & W_READ) && !c->eof) {
    ssize_t n = read(c->fd, read_buf, read_len);
    if (n > 0) {
      deliver_bytes(c, (size_t)n);
      if (conn_of(id) != c) return;
      continue;
    }
    if (n == 0) {
      deliver_end(c);
      if (conn_of(id) != c) return;
      break;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN) {
      deliver_error(c, errno);
      return;
    }
    break;
  }
  if (!c->want) return; // (kept for when something is wanted again)
  int soerr = 0;
  socklen_t l = sizeof soerr;
  if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &l) < 0) soerr = errno;
  if (!soerr) {
    // (the error was the read's, and it was read: what is left is plain readiness)
    c->ready &= ~R_ERR;
    if (c->want & W_WRITE) deliver_int(c, 3, 0);
    return;
  }
  deliver_error(c, soerr);
}

// Deliver what `c` has that JavaScript wants: an error, writability, then bytes.
static void run_conn(io_conn *c) {
  int id = c->id;
  if (c->listening) {
    if ((c->ready & W_READ) && !c->paused) accept_ready(c);
    return;
  }
  if ((c->ready & R_ERR) && c->want) {
    error_ready(c);
    return;
  }
  if ((c->ready & W_WRITE) && (c->want & W_WRITE)) {
    deliver_int(c, 3, 0);
    if (conn_of(id) != c) return;
  }
  if ((c->ready & W_READ) && (c->want & W_READ) && !c->eof) read_ready(c);
}

// Run the pending list of the last turn. Its connections leave the list before any is run, so a
// callback may make any of them pending again: that one is then skipped here and runs on the next turn.
// A connection closed meanwhile (its id perhaps another's by now) is skipped (conn_of_tag).
static void on_idle(uv_idle_t *h) {
  (void)h;
  if (running->n > 0) return; // (re-entered from a loop run inside a callback: leave that run's array be)
  id_list *run = pending;
  pending = running; // (empty: what the run makes pending goes here)
  running = run;
  int n = run->n;
  for (int i = 0; i < n; i++) {
    io_conn *c = conn_of_tag(run->ids[i]);
    if (c) c->pending = false;
  }
  napi_handle_scope scope;
  napi_open_handle_scope(io_env, &scope);
  for (int i = 0; i < n; i++) {
    io_conn *c = conn_of_tag(run->ids[i]);
    if (c && !c->pending) run_conn(c);
  }
  napi_close_handle_scope(io_env, scope);
  run->n = 0;
  if (pending->n == 0) uv_idle_stop(&ep_idle);
}

static void on_epoll(uv_poll_t *h, int status, int events) {
  (void)h;
  (void)status;
  (void)events;
  struct epoll_event evs[IO_EVENTS];
  napi_handle_scope scope;
  napi_open_handle_scope(io_env, &scope);
  for (;;) {
    int n = epoll_wait(ep, evs, IO_EVENTS, 0);
    if (n <= 0) break;
    // Remember every event first: a callback may close a connection whose event is further down.
    for (int i = 0; i < n; i++) {
      io_conn *c = conn_of_tag(evs[i].data.u64);
      if (!c) {
        evs[i].data.u64 = UINT64_MAX;
        continue;
      }
      uint32_t e = evs[i].events;
      if (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) c->ready |= W_READ;
      if (e & (EPOLLOUT | EPOLLHUP | EPOLLERR)) c->ready |= W_WRITE;
      if (e & EPOLLERR) c->ready |= R_ERR;
      if (e & (EPOLLRDHUP | EPOLLHUP)) c->hup = true;
    }
    for (int i = 0; i < n; i++) {
      if (evs[i].data.u64 == UINT64_MAX) continue;
      io_conn *c = conn_of_tag(evs[i].data.u64);
      if (c && !c->pending) run_conn(c);
    }
    if (n < IO_EVENTS) break;
  }
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

// ioInit(cb, readBuffer): the one receiver of every event, and the buffer reads land in (a Buffer of
// at least 4 KiB; reads take up to IO_READ_CHUNK bytes of it at a time).
static napi_value IoInit(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  size_t argc = io_args(env, info, 2, argv);
  napi_valuetype t;
  bool isbuf = false;
  void *rb = NULL;
  size_t rl = 0;
  if (argc < 2 || napi_typeof(env, argv[0], &t) != napi_ok || t != napi_function ||
      napi_is_buffer(env, argv[1], &isbuf) != napi_ok || !isbuf ||
      napi_get_buffer_info(env, argv[1], &rb, &rl) != napi_ok || rl < 4096)
    return tzorp_throw_type(env, "ioInit(cb, readBuffer)");
  if (ep < 0) {
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) return tzorp_throw_errno(env, "epoll_create1", errno);
    uv_loop_t *loop;
    napi_get_uv_event_loop(env, &loop);
    int r = uv_poll_init(loop, &ep_poll, ep);
    if (r == 0) r = uv_poll_start(&ep_poll, UV_READABLE, on_epoll);
    if (r < 0) {
      close(ep);
      ep = -1;
      return tzorp_throw_errno(env, "uv_poll_init", -r);
    }
    // The set's handle keeps the process alive only while something is watched for (liveness).
    uv_unref((uv_handle_t *)&ep_poll);
    uv_idle_init(loop, &ep_idle);
  }
  if (io_cb) napi_delete_reference(env, io_cb);
  io_env = env;
  napi_create_reference(env, argv[0], 1, &io_cb);
  if (io_read_ref) napi_delete_reference(env, io_read_ref);
  napi_create_reference(env, argv[1], 1, &io_read_ref);
  read_buf = rb;
  read_len = rl < IO_READ_CHUNK ? rl : IO_READ_CHUNK;
  if (!io_async) {
    napi_value name;
    napi_create_string_utf8(env, "tzorp.io", NAPI_AUTO_LENGTH, &name);
    napi_async_init(env, NULL, name, &io_async);
  }
  return NULL;
}


// A new connection for `fd` (made non-blocking; the set has it from the first watch()); NULL with an
// exception pending.
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
  c->fd = fd;
  c->id = id;
  c->gen = next_gen++;
  c->open = true;
  int fl = fcntl(fd, F_GETFL);
  if (fl >= 0 && !(fl & O_NONBLOCK)) fcntl(fd, F_SETFL, fl | O_NONBLOCK);
  conns[id] = c;
  return c;
}

// ioOpen(fd, noDelay) -> id: a socket to watch (made non-blocking; nothing is delivered until ioSet
// asks). noDelay: TCP_NODELAY on it now.
static napi_value IoOpen(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  size_t argc = io_args(env, info, 2, argv);
  int fd;
  if (argc < 1 || !arg_int(env, argv[0], &fd) || fd < 0) return tzorp_throw_type(env, "ioOpen(fd, noDelay)");
  if (!io_env) return tzorp_throw_type(env, "ioOpen before ioInit");
  bool nodelay = false;
  if (argc >= 2) napi_get_value_bool(env, argv[1], &nodelay);
  if (nodelay) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  io_conn *c = new_conn(env, fd);
  if (!c) return NULL;
  return int_value(env, c->id);
}

static void on_timer_closed(uv_handle_t *h) { free(h); }

// The end of a connection made by new_conn, in one place (ioClose, and ioListen when the set refuses
// the listener): it no longer keeps the loop alive, its id is free again at once, it leaves the set
// (explicitly when a dup may live on), a listener's timer closes, the descriptor closes (reset: RST
// instead of FIN) and the struct is freed. Nothing of it is delivered after this: events already
// fetched and the pending lists' entries carry its gen (conn_of_tag).
static void drop_conn(io_conn *c, bool reset) {
  c->open = false;
  liveness(c);
  conns[c->id] = NULL;
  free_ids[nfree++] = c->id;
  if (c->shared && c->added) epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
  if (c->pause) uv_close((uv_handle_t *)c->pause, on_timer_closed);
  if (reset) {
    struct linger l = {1, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  }
  close(c->fd);
  free(c);
}

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
  c->shared = true; // (the primary and the other workers hold the same socket)
  int one = 1;
  c->nodelay = setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == 0;
  c->want = W_READ;
  int err = watch(c);
  if (err) {
    drop_conn(c, false);
    return tzorp_throw_errno(env, "epoll_ctl", err);
  }
  liveness(c);
  return int_value(env, c->id);
}

// ioSet(id, readable, writable): what JavaScript wants delivered. What is already known to be ready
// comes on the next turn of the loop; the set changes only for writability.
static napi_value IoSet(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  size_t argc = io_args(env, info, 3, argv);
  int id;
  bool rd = false, wr = false;
  if (argc < 3 || !arg_int(env, argv[0], &id) || napi_get_value_bool(env, argv[1], &rd) != napi_ok ||
      napi_get_value_bool(env, argv[2], &wr) != napi_ok)
    return tzorp_throw_type(env, "ioSet(id, readable, writable)");
  io_conn *c = conn_of(id);
  if (!c || c->listening) return NULL;
  int want = (rd ? W_READ : 0) | (wr ? W_WRITE : 0);
  int added = want & ~c->want;
  c->want = want;
  liveness(c);
  int err = watch(c);
  if (err) return tzorp_throw_errno(env, "epoll_ctl", err);
  if ((added & c->ready) || ((c->ready & R_ERR) && added)) make_pending(c);
  return NULL;
}

// ioHold(id, held): a relay handover has the descriptor (held: the set stops watching it; its
// readiness is reported again when it comes back). The descriptor counts as shared from then on.
static napi_value IoHold(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  size_t argc = io_args(env, info, 2, argv);
  int id;
  bool held = false;
  if (argc < 2 || !arg_int(env, argv[0], &id) || napi_get_value_bool(env, argv[1], &held) != napi_ok)
    return tzorp_throw_type(env, "ioHold(id, held)");
  io_conn *c = conn_of(id);
  if (!c || c->listening) return NULL;
  c->held = held;
  c->shared = true;
  liveness(c);
  if (!held) c->ready |= W_READ | W_WRITE; // (the kernel's report comes again; a read meets EAGAIN)
  int err = watch(c);
  if (err) return tzorp_throw_errno(env, "epoll_ctl", err);
  if (!held && c->want) make_pending(c);
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
    if (n == 0 && len > (size_t)off) c->ready &= ~W_WRITE; // (the next edge says when it takes more)
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
  else if (errno == EINPROGRESS) {
    r = 1;
    c->ready &= ~W_WRITE; // (an unconnected socket's early EPOLLOUT is not the connect's end)
  } else r = -errno;
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
    if (e == 0) c->ready &= ~R_ERR;
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

// ioClose(id, reset): close the descriptor (reset: RST instead of FIN); it leaves the set with it
// (explicitly when a dup may live on). The id is free again at once; no event of the connection comes
// after this.
static napi_value IoClose(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  size_t argc = io_args(env, info, 2, argv);
  int id;
  bool reset = false;
  if (argc < 1 || !arg_int(env, argv[0], &id)) return tzorp_throw_type(env, "ioClose(id, reset)");
  if (argc >= 2) napi_get_value_bool(env, argv[1], &reset);
  io_conn *c = conn_of(id);
  if (c) drop_conn(c, reset);
  return NULL;
}

void tzorp_io_register(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"ioInit", NULL, IoInit, NULL, NULL, NULL, napi_enumerable, NULL},
      {"ioOpen", NULL, IoOpen, NULL, NULL, NULL, napi_enumerable, NULL},
      {"ioListen", NULL, IoListen, NULL, NULL, NULL, napi_enumerable, NULL},
      {"ioSet", NULL, IoSet, NULL, NULL, NULL, napi_enumerable, NULL},
      {"ioHold", NULL, IoHold, NULL, NULL, NULL, napi_enumerable, NULL},
      {"ioWrite", NULL, IoWrite, NULL, NULL, NULL, napi_enumerable, NULL},
      {"ioConnect", NULL, IoConnect, NULL, NULL, NULL, napi_enumerable, NULL},
      {"ioSoError", NULL, IoSoError, NULL, NULL, NULL, napi_enumerable, NULL},
      {"ioShutdown", NULL, IoShutdown, NULL, NULL, NULL, napi_enumerable, NULL},
      {"ioClose", NULL, IoClose, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
