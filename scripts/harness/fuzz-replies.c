/*
 * libFuzzer target: the memcached client's reply parsing and connection
 * handling (ngx_http_credit_memcached.c), against a server that answers
 * anything, in any pieces, or stops answering.
 *
 * The client's source is compiled into this file, its external functions
 * renamed, so that its static functions can be driven directly and the
 * store above it replaced by a model that checks what the client owes it:
 * every operation queued is answered exactly once, replies from the
 * server reach operations in the order they were queued, a value handed
 * over lies inside the read buffer, nothing is left queued at the end,
 * the bytes sent are the commands queued, whole and in order, with the
 * connection's "stats" first (the output buffer starts at 64 bytes here,
 * so that it grows, and a send() that takes part of it makes it compact
 * what is left), and a write said to be of unknown outcome was sent
 * whole.  A connection is a fake one whose recv() returns the input's
 * pieces and whose send() takes what the input allows.
 *
 * The input: byte 0, bit 0: the connection's "stats" and "stats settings"
 * are queued, ahead of the operations, as when a connection is made for
 * them; bit 1: the store cannot keep a ghost (a timed out write); bits
 * 2-6: how many operations are queued (0-31); bit 7: at most 4 may wait on
 * the server (max_pending), so that some are refused.  Then a byte for
 * each of them: bit 0 set, a write ("ms"), else a read ("mg"); bit 1 set,
 * a write with a token, else one that adds a new item; bits 2-7: its key
 * is 4 times that long (at least its name, "k" and its number).  Then a
 * byte N: send() takes 4 * N bytes, then no more until 'W' below (0xff:
 * all it is given).
 * The rest is what memcached answers, cut into the pieces recv() returns
 * at each 0xff byte; the byte after a 0xff may be an event: 'T' the reply
 * timeout fires, 'A' it fires after more than 60 s of silence, 'E' the
 * connection is closed, 'R' it is reset, 'Q' one more read is queued,
 * 'S' and a byte N: from then on send() takes 4 * N bytes, then no more
 * until 'W', the connection is writable again and takes everything, 'X'
 * worker_shutdown_timeout: nginx closes the connection (c->close), and
 * then one more operation must be refused at once.
 *
 * With FUZZ_OOM=1 each input runs again once for each allocation the
 * client made in its first run (the output buffer growing), that one
 * failing: the operation whose command did not fit is refused at once,
 * and every promise above still holds.
 */

#define ngx_http_credit_mc_create    fuzz_mc_create
#define ngx_http_credit_mc_destroy   fuzz_mc_destroy
#define ngx_http_credit_mc_instance  fuzz_mc_instance
#define ngx_http_credit_mc_shutdown  fuzz_mc_shutdown
#define ngx_http_credit_mc_is_shut   fuzz_mc_is_shut
#define ngx_http_credit_mc_gets      fuzz_mc_gets
#define ngx_http_credit_mc_store     fuzz_mc_store
#define ngx_http_credit_op_reply     fuzz_op_reply
#define ngx_http_credit_op_ghost     fuzz_op_ghost
#define ngx_http_credit_op_lost      fuzz_op_lost

#define NGX_HTTP_CREDIT_MC_OUT       64

#include "harness.h"
#include "../../ngx_http_credit_module/ngx_http_credit_memcached.c"


#define FUZZ_OPS     64
/* each op's command and its reads again after a stale token, 2 at most */
#define FUZZ_STREAM  (FUZZ_OPS * 3 * (NGX_HTTP_CREDIT_KEY_MAX + 64))


typedef struct {
    ngx_http_credit_op_t   op;
    ngx_uint_t             id;
    ngx_uint_t             seq;          /* when its command was queued */
    ngx_uint_t             answers;      /* final answers */
    ngx_uint_t             fuzz_ghost;   /* it is a ghost, not an op */
    size_t                 end;          /* its command's end in stream */
} fuzz_op_t;


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
static void fuzz_run(const uint8_t *data, size_t size);
static void fuzz_init(void);
static fuzz_op_t *fuzz_new_op(ngx_uint_t write, ngx_uint_t exists,
    size_t key_len);
static void fuzz_queued(fuzz_op_t *f);
static void fuzz_check_unsent(void);
static ssize_t fuzz_recv(ngx_connection_t *c, u_char *buf, size_t size);
static ssize_t fuzz_send(ngx_connection_t *c, u_char *buf, size_t size);
static void fuzz_flush(void);


static ngx_http_credit_mc_t      *mc;
static ngx_http_credit_server_t  *server;
static ngx_connection_t           conn;
static ngx_event_t                conn_read, conn_write;
static fuzz_op_t                 *ops[FUZZ_OPS];
static ngx_uint_t                 nops;
static ngx_uint_t                 seq;         /* commands queued */
static ngx_uint_t                 last_seq;    /* that of the last op a
                                                  server reply went to */
static ngx_uint_t                 no_ghosts;
static const u_char              *piece, *piece_end;
static ssize_t                    piece_rc;    /* once the piece is read */
static ngx_uint_t                 in_read;     /* the answers of the read
                                                  handler are in order */
static volatile u_char            sink;
static u_char                     stream[FUZZ_STREAM];
static size_t                     stream_len;  /* the commands queued */
static size_t                     wire_len;    /* what send() took */
static size_t                     budget;      /* what send() may take */


static void
fuzz_init(void)
{
    ngx_addr_t                   *addr;
    struct sockaddr_in           *sin;
    ngx_http_credit_main_conf_t   cmcf;

    credit_harness_init();

    ngx_event_timer_init(ngx_cycle->log);
    ngx_queue_init(&ngx_posted_events);

    ngx_memzero(&cmcf, sizeof(ngx_http_credit_main_conf_t));

    if (ngx_array_init(&cmcf.servers, ngx_cycle->pool, 1,
                       sizeof(ngx_addr_t))
        != NGX_OK)
    {
        abort();
    }

    addr = ngx_array_push(&cmcf.servers);
    sin = ngx_pcalloc(ngx_cycle->pool, sizeof(struct sockaddr_in));
    if (addr == NULL || sin == NULL) {
        abort();
    }

    sin->sin_family = AF_INET;
    addr->sockaddr = (struct sockaddr *) sin;
    addr->socklen = sizeof(struct sockaddr_in);
    ngx_str_set(&addr->name, "127.0.0.1:1");

    cmcf.timeout = 1000;
    cmcf.connect_timeout = 1000;
    cmcf.retry_timeout = 0;
    cmcf.max_pending = 1000;

    mc = fuzz_mc_create((ngx_cycle_t *) ngx_cycle, &cmcf);
    if (mc == NULL) {
        abort();
    }

    server = &mc->servers[0];
}


static fuzz_op_t *
fuzz_new_op(ngx_uint_t write, ngx_uint_t exists, size_t key_len)
{
    u_char     *p;
    ngx_int_t   rc;
    fuzz_op_t  *f;

    if (nops == FUZZ_OPS) {
        return NULL;
    }

    f = calloc(1, sizeof(fuzz_op_t));
    if (f == NULL) {
        abort();
    }

    f->id = nops;
    ops[nops++] = f;

    p = ngx_sprintf(f->op.key, "k%ui", f->id);

    while ((size_t) (p - f->op.key) < ngx_min(key_len,
                                              NGX_HTTP_CREDIT_KEY_MAX))
    {
        *p++ = 'x';
    }

    f->op.key_len = p - f->op.key;
    f->op.exists = exists;
    f->op.cas = 7;
    f->op.log = ngx_cycle->log;

    f->seq = ++seq;

    rc = write ? fuzz_mc_store(mc, &f->op, (u_char *) "1 2", 3)
               : fuzz_mc_gets(mc, &f->op);

    if (rc != NGX_OK) {
        f->answers++;                  /* refused at once: its answer */

    } else {
        fuzz_queued(f);
    }

    return f;
}


/* an op's command was queued: it is the last one in the output buffer */

static void
fuzz_queued(fuzz_op_t *f)
{
    if (stream_len + f->op.cmd_len > FUZZ_STREAM
        || (size_t) (server->out_last - server->out) < f->op.cmd_len)
    {
        fprintf(stderr, "fuzz-replies: a command longer than queued\n");
        abort();
    }

    ngx_memcpy(stream + stream_len, server->out_last - f->op.cmd_len,
               f->op.cmd_len);
    stream_len += f->op.cmd_len;
    f->end = stream_len;
}


/* what was queued and not sent is what the output buffer holds */

static void
fuzz_check_unsent(void)
{
    size_t  unsent;

    unsent = server->out_last - server->out_pos;

    if (wire_len + unsent != stream_len
        || ngx_memcmp(server->out_pos, stream + wire_len, unsent) != 0)
    {
        fprintf(stderr, "fuzz-replies: the output buffer lost or changed "
                "a command (%lu sent, %lu unsent, %lu queued)\n",
                (unsigned long) wire_len, (unsigned long) unsent,
                (unsigned long) stream_len);
        abort();
    }
}


/* the model of the store: every op is answered once */

void
fuzz_op_reply(ngx_http_credit_op_t *op, ngx_http_credit_reply_t *reply)
{
    size_t      i;
    fuzz_op_t  *f;

    f = (fuzz_op_t *) op;

    if (f->answers) {
        fprintf(stderr, "fuzz-replies: op %lu answered twice\n",
                (unsigned long) f->id);
        abort();
    }

    if (reply->type != NGX_HTTP_CREDIT_REPLY_ERROR || in_read) {

        /* from the server: in the order queued (a ghost keeps its op's) */

        if (f->seq < last_seq) {
            fprintf(stderr, "fuzz-replies: command %lu answered after "
                    "command %lu\n", (unsigned long) f->seq,
                    (unsigned long) last_seq);
            abort();
        }

        last_seq = f->seq;
    }

    if (reply->type == NGX_HTTP_CREDIT_REPLY_VALUE && reply->value.len) {
        if (reply->value.len > NGX_HTTP_CREDIT_MC_VALUE
            || reply->value.data < server->in
            || reply->value.data + reply->value.len
               > server->in + NGX_HTTP_CREDIT_MC_IN)
        {
            fprintf(stderr, "fuzz-replies: a value outside the buffer\n");
            abort();
        }

        /* read it all: ASan sees a read past what was received */

        for (i = 0; i < reply->value.len; i++) {
            sink += reply->value.data[i];
        }
    }

    if (reply->type == NGX_HTTP_CREDIT_REPLY_CONFLICT && !f->fuzz_ghost
        && op->retries++ < 2)
    {
        /* as the store does: read again; answered when that is */

        f->seq = ++seq;

        if (fuzz_mc_gets(mc, op) == NGX_OK) {
            fuzz_queued(f);
            return;
        }
    }

    f->answers++;
}


ngx_http_credit_op_t *
fuzz_op_ghost(ngx_http_credit_op_t *op)
{
    fuzz_op_t  *f, *g;

    if (no_ghosts || nops == FUZZ_OPS) {
        return NULL;
    }

    f = (fuzz_op_t *) op;

    g = calloc(1, sizeof(fuzz_op_t));
    if (g == NULL) {
        abort();
    }

    g->id = f->id;
    g->seq = f->seq;
    g->fuzz_ghost = 1;
    g->end = f->end;
    g->op.expect = op->expect;
    g->op.cmd_len = op->cmd_len;
    g->op.ghost = 1;
    g->op.log = op->log;
    ngx_memcpy(g->op.key, op->key, op->key_len);
    g->op.key_len = op->key_len;

    ops[nops++] = g;

    return &g->op;
}


void
fuzz_op_lost(ngx_http_credit_op_t *op, const char *err)
{
    fuzz_op_t  *f;

    f = (fuzz_op_t *) op;

    /* a ghost's "end" is its op's */

    if (f->end > wire_len) {
        fprintf(stderr, "fuzz-replies: op %lu said to be of unknown outcome "
                "but not sent whole\n", (unsigned long) f->id);
        abort();
    }

    op->in_doubt = 1;
}


static ssize_t
fuzz_recv(ngx_connection_t *c, u_char *buf, size_t size)
{
    size_t  n;

    if (piece == piece_end) {
        return piece_rc;
    }

    n = ngx_min(size, (size_t) (piece_end - piece));
    ngx_memcpy(buf, piece, n);
    piece += n;

    return n;
}


static ssize_t
fuzz_send(ngx_connection_t *c, u_char *buf, size_t size)
{
    size_t  n;

    if (budget == 0) {
        c->write->ready = 0;
        return NGX_AGAIN;
    }

    n = ngx_min(size, budget);
    budget -= n;

    if (wire_len + n > stream_len
        || ngx_memcmp(buf, stream + wire_len, n) != 0)
    {
        fprintf(stderr, "fuzz-replies: send() got bytes that are not the "
                "commands queued, in order (at %lu)\n",
                (unsigned long) wire_len);
        abort();
    }

    wire_len += n;

    return n;
}


/* the flush event, run now rather than at the end of an event loop pass */

static void
fuzz_flush(void)
{
    if (server->flush.posted) {
        ngx_delete_posted_event(&server->flush);
    }

    ngx_http_credit_flush(&server->flush);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static ngx_uint_t   init;

    if (!init) {
        fuzz_init();
        init = 1;
    }

    credit_harness_oom_each(fuzz_run, data, size);

    return 0;
}


static void
fuzz_run(const uint8_t *data, size_t size)
{
    u_char              ev;
    fuzz_op_t          *f;
    ngx_uint_t          i, n, more, hello;
    const uint8_t      *p, *end, *next;

    if (size < 1) {
        return;
    }

    p = data;
    end = data + size;

    /* a new connection, as ngx_http_credit_connect() leaves it */

    ngx_memzero(&conn, sizeof(ngx_connection_t));
    ngx_memzero(&conn_read, sizeof(ngx_event_t));
    ngx_memzero(&conn_write, sizeof(ngx_event_t));

    conn.fd = open("/dev/null", O_RDONLY);
    if (conn.fd == -1) {
        abort();
    }

    conn.read = &conn_read;
    conn.write = &conn_write;
    conn.recv = fuzz_recv;
    conn.send = fuzz_send;
    conn.log = ngx_cycle->log;
    conn.data = server;
    conn_read.data = &conn;
    conn_read.log = ngx_cycle->log;
    conn_read.handler = ngx_http_credit_read_handler;
    conn_write.data = &conn;
    conn_write.log = ngx_cycle->log;
    conn_write.handler = ngx_http_credit_write_handler;

    server->c = &conn;
    server->connecting = 0;
    server->down_until = 0;
    server->instance = 0;

    nops = 0;
    last_seq = seq;
    no_ghosts = (*p & 2) != 0;
    n = (*p >> 2) & 31;
    mc->max_pending = (*p & 0x80) ? 4 : 1000;
    mc->shut = 0;
    hello = *p & 1;

    /* the output buffer of a new server, as small as it starts here */

    ngx_free(server->out);
    server->out = ngx_alloc(NGX_HTTP_CREDIT_MC_OUT, ngx_cycle->log);
    if (server->out == NULL) {
        abort();
    }

    server->out_pos = server->out;
    server->out_last = server->out;
    server->out_end = server->out + NGX_HTTP_CREDIT_MC_OUT;

    stream_len = 0;
    wire_len = 0;
    budget = (size_t) -1;

    p++;

    /* with FUZZ_OOM=1, one of the client's allocations from here fails */

    credit_harness_oom_arm(1);

    for (i = 0; i < n && p < end; i++, p++) {
        (void) fuzz_new_op(*p & 1, (*p & 2) != 0, 4 * (*p >> 2));
    }

    if (p < end) {
        budget = (*p == 0xff) ? (size_t) -1 : 4 * (size_t) *p;
        p++;
    }

    /* as ngx_http_credit_connect() does, after they were queued */

    if (hello) {
        /*
         * this stands in for ngx_http_credit_connect(), whose answer to a
         * failed hello (the connection dropped) is not modelled here: its
         * allocation is not one that fails
         */

        credit_harness_oom_arm(0);

        if (ngx_http_credit_hello(server) != NGX_OK
            || stream_len + server->hello.cmd_len > FUZZ_STREAM)
        {
            abort();
        }

        credit_harness_oom_arm(1);

        ngx_memmove(stream + server->hello.cmd_len, stream, stream_len);
        ngx_memcpy(stream, server->out_pos, server->hello.cmd_len);
        stream_len += server->hello.cmd_len;

        for (i = 0; i < nops; i++) {
            ops[i]->end += server->hello.cmd_len;
        }
    }

    fuzz_check_unsent();
    fuzz_flush();

    /* the replies, piece by piece */

    while (server->c && p < end) {
        next = memchr(p, 0xff, end - p);
        if (next == NULL) {
            next = end;
        }

        piece = p;
        piece_end = next;
        piece_rc = NGX_AGAIN;
        ev = (next + 1 < end) ? next[1] : 0;
        more = 0;

        switch (ev) {
        case 'E':
            piece_rc = 0;
            more = 1;
            break;
        case 'R':
            piece_rc = NGX_ERROR;
            more = 1;
            break;
        case 'T':
        case 'A':
        case 'Q':
        case 'W':
        case 'X':
            more = 1;
            break;
        case 'S':
            more = 2;
            break;
        }

        in_read = 1;
        ngx_http_credit_read_handler(&conn_read);
        in_read = 0;

        if (server->c && (ev == 'T' || ev == 'A')) {

            /* as ngx_event_expire_timers() does */

            if (conn_read.timer_set) {
                ngx_del_timer(&conn_read);
            }

            ngx_current_msec += (ev == 'A') ? NGX_HTTP_CREDIT_MC_ABANDON
                                            : mc->timeout;
            conn_read.timedout = 1;
            ngx_http_credit_read_handler(&conn_read);
        }

        if (server->c && ev == 'X') {

            /* as ngx_shutdown_timer_handler() does */

            conn.close = 1;
            ngx_http_credit_read_handler(&conn_read);

            f = fuzz_new_op(0, 0, 0);

            if (server->c || !ngx_queue_empty(&server->sent)
                || (f && f->answers != 1))
            {
                fprintf(stderr, "fuzz-replies: the client is not shut\n");
                abort();
            }
        }

        if (server->c && ev == 'Q') {
            (void) fuzz_new_op(0, 0, 0);
            fuzz_flush();
        }

        if (server->c && ev == 'S') {
            budget = (next + 2 < end) ? 4 * (size_t) next[2] : 0;
        }

        if (server->c && ev == 'W') {

            /* as epoll reports the socket writable */

            budget = (size_t) -1;
            conn_write.ready = 1;
            ngx_http_credit_write_handler(&conn_write);
        }

        if (server->c) {
            fuzz_check_unsent();
        }

        /* an event's byte N may be missing at the end of the input */

        p = (next < end && (size_t) (end - next) > 1 + more)
            ? next + 1 + more : end;
    }

    if (server->c) {
        fuzz_check_unsent();
    }

    credit_harness_oom_arm(0);

    /* the end: what is still queued fails, as when a worker exits */

    if (server->c || !ngx_queue_empty(&server->sent)) {
        ngx_http_credit_server_fail(server, "the end of the input", 0);
    }

    ngx_cycle->free_connections = NULL;
    ((ngx_cycle_t *) ngx_cycle)->free_connection_n = 0;

    if (server->nsent || !ngx_queue_empty(&server->sent)) {
        fprintf(stderr, "fuzz-replies: operations left queued\n");
        abort();
    }

    if (server->flush.posted) {
        ngx_delete_posted_event(&server->flush);
    }

    for (i = 0; i < nops; i++) {
        if (ops[i]->answers != 1) {
            fprintf(stderr, "fuzz-replies: %s %lu answered %lu times\n",
                    ops[i]->fuzz_ghost ? "ghost" : "op",
                    (unsigned long) ops[i]->id,
                    (unsigned long) ops[i]->answers);
            abort();
        }

        free(ops[i]);
    }
}
