
/*
 * ngx_http_credit_module: a non-blocking memcached client on nginx's event
 * loop, speaking the text protocol.
 *
 * Each worker keeps one keepalive connection per memcached server.  The
 * commands of all requests are appended to the server's output buffer and
 * written together once per event loop pass (a posted event), so many
 * requests share one write(), one read() and one wake-up of memcached;
 * replies come back in order and are handed to their operations in order.
 * Accounts are spread over the servers with a ketama continuum (MD5, 160
 * points a server): adding a server moves few accounts, and a server that
 * is down is never replaced by another one.
 *
 * Commands are memcached's meta commands: "mg KEY v c" reads a balance
 * and its cas token, "ms KEY LEN C<cas> c" (or "ME c": add) writes one
 * and returns the new token, which the balance cache keeps.  Each new
 * connection starts with "stats": the server's name, pid and start time
 * name the memcached instance, so tokens from before a restart, or from
 * another server, are never used.
 */


#include "ngx_http_credit_module.h"

#include <ngx_md5.h>


#define NGX_HTTP_CREDIT_MC_POINTS   160
#define NGX_HTTP_CREDIT_MC_IN       (64 * 1024)

/* grows as a pass needs; the fuzz target starts it small */
#ifndef NGX_HTTP_CREDIT_MC_OUT
#define NGX_HTTP_CREDIT_MC_OUT      (16 * 1024)
#endif

/*
 * No balance is longer ("PLAN PACK": two numbers of at most 19 digits
 * and a space); a longer value is no balance, and is dropped unread
 */
#define NGX_HTTP_CREDIT_MC_VALUE    256

/* memcached stores no larger item (its -I goes up to 1 GB) */
#define NGX_HTTP_CREDIT_MC_ITEM_MAX (1024 * 1024 * 1024)

/* how long a silent connection is kept for the late replies it owes */
#define NGX_HTTP_CREDIT_MC_ABANDON  60000


typedef struct {
    uint32_t                     point;
    ngx_uint_t                   server;
} ngx_http_credit_point_t;


typedef struct {
    ngx_http_credit_mc_t        *mc;
    ngx_addr_t                  *addr;
    ngx_peer_connection_t        peer;
    ngx_connection_t            *c;
    ngx_queue_t                  sent;        /* ops awaiting a reply */
    ngx_uint_t                   nsent;
    u_char                      *out;         /* commands to write */
    u_char                      *out_pos;
    u_char                      *out_last;
    u_char                      *out_end;
    u_char                      *in;          /* replies read */
    u_char                      *in_pos;
    u_char                      *in_last;
    size_t                       skip;        /* bytes of a value to drop */
    ngx_event_t                  flush;
    time_t                       down_until;
    uint64_t                     instance;    /* 0 until "stats" answers */
    ngx_http_credit_op_t         hello;       /* "stats", "stats settings" */
    ngx_msec_t                   silent_since;
    unsigned                     hello_parts:2;  /* replies of the hello
                                                    to come; 0: none sent */
    unsigned                     connecting:1;
    unsigned                     silent:1;    /* timed out, not answered */
} ngx_http_credit_server_t;


struct ngx_http_credit_mc_s {
    ngx_http_credit_server_t    *servers;
    ngx_uint_t                   nservers;
    ngx_http_credit_point_t     *points;
    ngx_uint_t                   npoints;
    ngx_http_credit_point_t     *prev_points; /* previous=, or NULL */
    ngx_uint_t                   prev_npoints;
    ngx_str_t                   *prev_names;
    ngx_msec_t                   timeout;
    ngx_msec_t                   connect_timeout;
    time_t                       retry_timeout;
    ngx_uint_t                   max_pending;
    ngx_log_t                   *log;
    unsigned                     shut:1;      /* the worker is exiting */
};


static int ngx_libc_cdecl ngx_http_credit_point_cmp(const void *a,
    const void *b);
static uint32_t ngx_http_credit_hash(u_char *data, size_t len);
static uint32_t ngx_http_credit_word(u_char *d);
static ngx_http_credit_point_t *ngx_http_credit_points(ngx_str_t *name,
    ngx_uint_t server, ngx_http_credit_point_t *pt);
static ngx_uint_t ngx_http_credit_owner(ngx_http_credit_point_t *points,
    ngx_uint_t n, uint32_t h);
static ngx_http_credit_server_t *ngx_http_credit_server(
    ngx_http_credit_mc_t *mc, ngx_http_credit_op_t *op);
static ngx_int_t ngx_http_credit_send(ngx_http_credit_server_t *s,
    ngx_http_credit_op_t *op, size_t len, u_char **p);
static ngx_int_t ngx_http_credit_room(ngx_http_credit_server_t *s,
    size_t len);
static void ngx_http_credit_flush(ngx_event_t *ev);
static ngx_int_t ngx_http_credit_connect(ngx_http_credit_server_t *s);
static ngx_int_t ngx_http_credit_test_connect(ngx_http_credit_server_t *s);
static void ngx_http_credit_write_handler(ngx_event_t *wev);
static void ngx_http_credit_read_handler(ngx_event_t *rev);
static ngx_int_t ngx_http_credit_parse(ngx_http_credit_server_t *s);
static ngx_int_t ngx_http_credit_hello(ngx_http_credit_server_t *s);
static ngx_int_t ngx_http_credit_stats(ngx_http_credit_server_t *s,
    u_char *p, u_char *end);
static ngx_uint_t ngx_http_credit_error_line(u_char *p, size_t len);
static void ngx_http_credit_refused(ngx_http_credit_server_t *s, u_char *p,
    size_t len);
static uint64_t ngx_http_credit_flag(u_char *p, u_char *last, u_char flag);
static void ngx_http_credit_server_timeout(ngx_http_credit_server_t *s);
static void ngx_http_credit_server_down(ngx_http_credit_server_t *s,
    const char *reason, ngx_uint_t n);
static void ngx_http_credit_fail_ops(ngx_queue_t *ops, const char *err);
static void ngx_http_credit_server_fail(ngx_http_credit_server_t *s,
    const char *reason, ngx_uint_t mark_down);


ngx_http_credit_mc_t *
ngx_http_credit_mc_create(ngx_cycle_t *cycle,
    ngx_http_credit_main_conf_t *cmcf)
{
    ngx_uint_t                 i, n;
    ngx_addr_t                *addr;
    ngx_http_credit_mc_t      *mc;
    ngx_http_credit_point_t   *pt;
    ngx_http_credit_server_t  *s;

    mc = ngx_pcalloc(cycle->pool, sizeof(ngx_http_credit_mc_t));
    if (mc == NULL) {
        return NULL;
    }

    n = cmcf->servers.nelts;
    addr = cmcf->servers.elts;

    mc->servers = ngx_pcalloc(cycle->pool,
                              n * sizeof(ngx_http_credit_server_t));
    mc->points = ngx_palloc(cycle->pool, n * NGX_HTTP_CREDIT_MC_POINTS
                                         * sizeof(ngx_http_credit_point_t));
    if (mc->servers == NULL || mc->points == NULL) {
        return NULL;
    }

    mc->nservers = n;
    mc->timeout = cmcf->timeout;
    mc->connect_timeout = cmcf->connect_timeout;
    mc->retry_timeout = cmcf->retry_timeout;
    mc->max_pending = cmcf->max_pending;
    mc->log = cycle->log;

    pt = mc->points;

    for (i = 0; i < n; i++) {
        s = &mc->servers[i];
        s->mc = mc;
        s->addr = &addr[i];
        ngx_queue_init(&s->sent);

        s->out = ngx_alloc(NGX_HTTP_CREDIT_MC_OUT, cycle->log);
        s->in = ngx_alloc(NGX_HTTP_CREDIT_MC_IN, cycle->log);
        if (s->out == NULL || s->in == NULL) {
            return NULL;
        }

        s->out_pos = s->out;
        s->out_last = s->out;
        s->out_end = s->out + NGX_HTTP_CREDIT_MC_OUT;
        s->in_pos = s->in;
        s->in_last = s->in;

        s->flush.handler = ngx_http_credit_flush;
        s->flush.data = s;
        s->flush.log = cycle->log;

        pt = ngx_http_credit_points(&addr[i].name, i, pt);
    }

    mc->npoints = pt - mc->points;

    ngx_qsort(mc->points, mc->npoints, sizeof(ngx_http_credit_point_t),
              ngx_http_credit_point_cmp);

    if (cmcf->previous == NULL) {
        return mc;
    }

    /* the continuum before the change of the tier, to tell who moves */

    n = cmcf->previous->nelts;
    mc->prev_names = cmcf->previous->elts;

    mc->prev_points = ngx_palloc(cycle->pool,
                                 n * NGX_HTTP_CREDIT_MC_POINTS
                                 * sizeof(ngx_http_credit_point_t));
    if (mc->prev_points == NULL) {
        return NULL;
    }

    pt = mc->prev_points;

    for (i = 0; i < n; i++) {
        pt = ngx_http_credit_points(&mc->prev_names[i], i, pt);
    }

    mc->prev_npoints = pt - mc->prev_points;

    ngx_qsort(mc->prev_points, mc->prev_npoints,
              sizeof(ngx_http_credit_point_t), ngx_http_credit_point_cmp);

    return mc;
}


/*
 * ketama: 40 MD5s of "NAME-J", the server's name as written, 4 points
 * from each (scripts/move-balances computes the same)
 */

static ngx_http_credit_point_t *
ngx_http_credit_points(ngx_str_t *name, ngx_uint_t server,
    ngx_http_credit_point_t *pt)
{
    u_char      *p;
    ngx_md5_t    md5;
    ngx_uint_t   j, k;
    u_char       d[16], num[NGX_INT_T_LEN + 1];

    for (j = 0; j < NGX_HTTP_CREDIT_MC_POINTS / 4; j++) {
        p = ngx_sprintf(num, "-%ui", j);

        ngx_md5_init(&md5);
        ngx_md5_update(&md5, name->data, name->len);
        ngx_md5_update(&md5, num, p - num);
        ngx_md5_final(d, &md5);

        for (k = 0; k < 4; k++) {
            pt->point = ngx_http_credit_word(&d[k * 4]);
            pt->server = server;
            pt++;
        }
    }

    return pt;
}


void
ngx_http_credit_mc_destroy(ngx_http_credit_mc_t *mc)
{
    ngx_uint_t                 i;
    ngx_queue_t                ghosts, *q, *next;
    ngx_http_credit_op_t      *op;
    ngx_http_credit_server_t  *s;

    for (i = 0; i < mc->nservers; i++) {
        s = &mc->servers[i];

        /* the writes still in doubt are logged */

        ngx_queue_init(&ghosts);

        for (q = ngx_queue_head(&s->sent);
             q != ngx_queue_sentinel(&s->sent);
             q = next)
        {
            next = ngx_queue_next(q);
            op = ngx_queue_data(q, ngx_http_credit_op_t, mc_queue);

            if (op->ghost) {
                ngx_queue_remove(q);
                ngx_queue_insert_tail(&ghosts, q);
            }
        }

        ngx_http_credit_fail_ops(&ghosts,
                                 "the worker exits before memcached answered");

        if (s->c) {
            ngx_close_connection(s->c);
            s->c = NULL;
        }

        if (s->flush.posted) {
            ngx_delete_posted_event(&s->flush);
        }

        ngx_free(s->out);
        ngx_free(s->in);
    }
}


static int ngx_libc_cdecl
ngx_http_credit_point_cmp(const void *a, const void *b)
{
    const ngx_http_credit_point_t  *pa = a, *pb = b;

    if (pa->point != pb->point) {
        return (pa->point < pb->point) ? -1 : 1;
    }

    /* two servers on one point: the first listed first, as the tool */

    return (pa->server < pb->server) ? -1 : (pa->server > pb->server);
}


static uint32_t
ngx_http_credit_hash(u_char *data, size_t len)
{
    ngx_md5_t  md5;
    u_char     d[16];

    ngx_md5_init(&md5);
    ngx_md5_update(&md5, data, len);
    ngx_md5_final(d, &md5);

    return ngx_http_credit_word(d);
}


/* 4 bytes of an MD5, little-endian, as ketama reads them */

static uint32_t
ngx_http_credit_word(u_char *d)
{
    return ((uint32_t) d[3] << 24) | ((uint32_t) d[2] << 16)
           | ((uint32_t) d[1] << 8) | d[0];
}


/* the server of the first point at or after h, wrapping around */

static ngx_uint_t
ngx_http_credit_owner(ngx_http_credit_point_t *points, ngx_uint_t n,
    uint32_t h)
{
    ngx_uint_t  lo, hi, mid;

    lo = 0;
    hi = n;

    while (lo < hi) {
        mid = (lo + hi) / 2;

        if (points[mid].point < h) {
            lo = mid + 1;

        } else {
            hi = mid;
        }
    }

    if (lo == n) {
        lo = 0;
    }

    return points[lo].server;
}


/*
 * The server of an op's key: looked up once, kept in the op.  With
 * previous=, the op is "moving" when the key's server then was another.
 */

static ngx_http_credit_server_t *
ngx_http_credit_server(ngx_http_credit_mc_t *mc, ngx_http_credit_op_t *op)
{
    uint32_t                   h;
    ngx_str_t                 *prev;
    ngx_http_credit_server_t  *s;

    if (op->server) {
        return op->server;
    }

    if (mc->nservers == 1 && mc->prev_points == NULL) {
        op->server = &mc->servers[0];
        return op->server;
    }

    h = ngx_http_credit_hash(op->key, op->key_len);

    s = &mc->servers[ngx_http_credit_owner(mc->points, mc->npoints, h)];
    op->server = s;

    if (mc->prev_points) {
        prev = &mc->prev_names[ngx_http_credit_owner(mc->prev_points,
                                                     mc->prev_npoints, h)];

        op->moving = (prev->len != s->addr->name.len
                      || ngx_strncmp(prev->data, s->addr->name.data,
                                     prev->len)
                         != 0);
    }

    return s;
}


/* the id of the memcached instance a key's server runs, if known */

uint64_t
ngx_http_credit_mc_instance(ngx_http_credit_mc_t *mc, ngx_http_credit_op_t *op)
{
    ngx_http_credit_server_t  *s;

    s = ngx_http_credit_server(mc, op);

    return (s->c && !s->connecting) ? s->instance : 0;
}


/* "mg KEY v c": the value and its cas token */

ngx_int_t
ngx_http_credit_mc_gets(ngx_http_credit_mc_t *mc, ngx_http_credit_op_t *op)
{
    u_char                    *p;
    ngx_http_credit_server_t  *s;

    s = ngx_http_credit_server(mc, op);

    op->expect = NGX_HTTP_CREDIT_EXPECT_VALUE;

    if (ngx_http_credit_send(s, op, sizeof("mg  v c\r\n") - 1 + op->key_len,
                             &p)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    p = ngx_cpymem(p, "mg ", 3);
    p = ngx_cpymem(p, op->key, op->key_len);
    p = ngx_cpymem(p, " v c\r\n", 6);

    op->cmd_len = p - s->out_last;
    s->out_last = p;

    return NGX_OK;
}


/* "ms KEY LEN C<cas> c" or, for a new item, "ms KEY LEN ME c" */

ngx_int_t
ngx_http_credit_mc_store(ngx_http_credit_mc_t *mc, ngx_http_credit_op_t *op,
    u_char *value, size_t len)
{
    u_char                    *p;
    ngx_http_credit_server_t  *s;

    s = ngx_http_credit_server(mc, op);

    op->expect = NGX_HTTP_CREDIT_EXPECT_STORED;

    if (ngx_http_credit_send(s, op, sizeof("ms   C c\r\n\r\n") - 1
                                    + op->key_len + len + 2 * NGX_INT64_LEN,
                             &p)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (op->exists) {
        p = ngx_sprintf(p, "ms %*s %uz C%uL c\r\n", op->key_len, op->key,
                        len, op->cas);

    } else {
        p = ngx_sprintf(p, "ms %*s %uz ME c\r\n", op->key_len, op->key, len);
    }

    p = ngx_cpymem(p, value, len);
    *p++ = CR; *p++ = LF;

    op->cmd_len = p - s->out_last;
    s->out_last = p;

    return NGX_OK;
}


/*
 * Makes room for a command of at most len bytes at *p, queues op for its
 * reply and schedules a flush.  NGX_ERROR: the server is down or too busy.
 */

static ngx_int_t
ngx_http_credit_send(ngx_http_credit_server_t *s, ngx_http_credit_op_t *op,
    size_t len, u_char **p)
{
    ngx_http_credit_mc_t  *mc;

    mc = s->mc;

    if (mc->shut) {
        ngx_cpystrn((u_char *) op->err, (u_char *) "the worker is exiting",
                    sizeof(op->err));
        return NGX_ERROR;
    }

    if (s->down_until > ngx_time()) {
        ngx_cpystrn((u_char *) op->err, (u_char *) "memcached server is down",
                    sizeof(op->err));
        return NGX_ERROR;
    }

    if (s->nsent - (s->hello_parts != 0) >= mc->max_pending) {
        ngx_cpystrn((u_char *) op->err,
                    (u_char *) "too many memcached operations pending",
                    sizeof(op->err));
        return NGX_ERROR;
    }

    if (ngx_http_credit_room(s, len) != NGX_OK) {
        return NGX_ERROR;
    }

    *p = s->out_last;

    op->instance = (s->c && !s->connecting) ? s->instance : 0;
    ngx_queue_insert_tail(&s->sent, &op->mc_queue);
    s->nsent++;

    if (!s->flush.posted) {
        ngx_post_event(&s->flush, &ngx_posted_events);
    }

    return NGX_OK;
}


/* len bytes free after what is queued: compact what was written, or grow */

static ngx_int_t
ngx_http_credit_room(ngx_http_credit_server_t *s, size_t len)
{
    u_char  *buf;
    size_t   size, used;

    if ((size_t) (s->out_end - s->out_last) >= len) {
        return NGX_OK;
    }

    used = s->out_last - s->out_pos;

    if (s->out_pos > s->out) {
        ngx_memmove(s->out, s->out_pos, used);
        s->out_pos = s->out;
        s->out_last = s->out + used;

        if ((size_t) (s->out_end - s->out_last) >= len) {
            return NGX_OK;
        }
    }

    size = 2 * (s->out_end - s->out) + len;

    buf = ngx_alloc(size, s->mc->log);
    if (buf == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(buf, s->out_pos, used);
    ngx_free(s->out);

    s->out = buf;
    s->out_pos = buf;
    s->out_last = buf + used;
    s->out_end = buf + size;

    return NGX_OK;
}


/* once per event loop pass: connect if needed, write what is queued */

static void
ngx_http_credit_flush(ngx_event_t *ev)
{
    ngx_http_credit_server_t  *s;

    s = ev->data;

    if (s->c == NULL) {
        if (ngx_http_credit_connect(s) != NGX_OK) {
            return;
        }
    }

    if (!s->connecting) {
        ngx_http_credit_write_handler(s->c->write);
    }
}


static ngx_int_t
ngx_http_credit_connect(ngx_http_credit_server_t *s)
{
    ngx_int_t          rc;
    ngx_connection_t  *c;

    ngx_memzero(&s->peer, sizeof(ngx_peer_connection_t));

    s->peer.sockaddr = s->addr->sockaddr;
    s->peer.socklen = s->addr->socklen;
    s->peer.name = &s->addr->name;
    s->peer.get = ngx_event_get_peer;
    s->peer.log = s->mc->log;
    s->peer.log_error = NGX_ERROR_ERR;

    rc = ngx_event_connect_peer(&s->peer);

    if (rc == NGX_ERROR || rc == NGX_BUSY || rc == NGX_DECLINED) {
        if (s->peer.connection) {
            ngx_close_connection(s->peer.connection);
            s->peer.connection = NULL;
        }

        ngx_http_credit_server_fail(s, "cannot connect to memcached", 1);
        return NGX_ERROR;
    }

    c = s->peer.connection;
    s->c = c;
    s->instance = 0;

    c->data = s;
    c->log = s->mc->log;
    c->read->log = c->log;
    c->write->log = c->log;
    c->read->handler = ngx_http_credit_read_handler;
    c->write->handler = ngx_http_credit_write_handler;

    if (ngx_tcp_nodelay(c) != NGX_OK) {
        ngx_http_credit_server_fail(s, "cannot talk to memcached", 1);
        return NGX_ERROR;
    }

    if (ngx_http_credit_hello(s) != NGX_OK) {
        ngx_http_credit_server_fail(s, "cannot talk to memcached", 1);
        return NGX_ERROR;
    }

    if (rc == NGX_AGAIN) {
        s->connecting = 1;
        ngx_add_timer(c->write, s->mc->connect_timeout);
        return NGX_OK;
    }

    s->connecting = 0;

    return NGX_OK;
}


/*
 * The first commands of every connection, ahead of those queued while it
 * was made: "stats", whose pid and start time name the instance and
 * whose version is checked, and "stats settings", which says whether the
 * server evicts items when it is full.
 */

static ngx_int_t
ngx_http_credit_hello(ngx_http_credit_server_t *s)
{
    size_t     used;
    ngx_str_t  cmd = ngx_string("stats\r\nstats settings\r\n");

    /* the commands queued before the connection was made may fill it */

    if (ngx_http_credit_room(s, cmd.len) != NGX_OK) {
        return NGX_ERROR;
    }

    used = s->out_last - s->out_pos;

    ngx_memmove(s->out_pos + cmd.len, s->out_pos, used);
    ngx_memcpy(s->out_pos, cmd.data, cmd.len);
    s->out_last += cmd.len;

    ngx_memzero(&s->hello, sizeof(ngx_http_credit_op_t));
    s->hello.expect = NGX_HTTP_CREDIT_EXPECT_STATS;
    s->hello.cmd_len = cmd.len;

    ngx_queue_insert_head(&s->sent, &s->hello.mc_queue);
    s->nsent++;
    s->hello_parts = 2;

    return NGX_OK;
}


/*
 * The outcome of a non-blocking connect(), as the upstream module tests
 * it.  A refused connect wakes the read side first (epoll reports the
 * error as readable and writable): without this test its recv() would
 * log the refusal with no address, as if memcached had closed the
 * connection.
 */

static ngx_int_t
ngx_http_credit_test_connect(ngx_http_credit_server_t *s)
{
    int                err;
    socklen_t          len;
    ngx_connection_t  *c;

    c = s->c;

    err = 0;
    len = sizeof(int);

    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, (void *) &err, &len) == -1) {
        err = ngx_socket_errno;
    }

    if (err) {
        ngx_log_error(NGX_LOG_ERR, c->log, err,
                      "credit: connect() to memcached %V failed",
                      &s->addr->name);
        ngx_http_credit_server_fail(s, "cannot connect to memcached", 1);
        return NGX_ERROR;
    }

    s->connecting = 0;

    if (c->write->timer_set) {
        ngx_del_timer(c->write);
    }

    return NGX_OK;
}


static void
ngx_http_credit_write_handler(ngx_event_t *wev)
{
    ssize_t                    n;
    ngx_connection_t          *c;
    ngx_http_credit_server_t  *s;

    c = wev->data;
    s = c->data;

    if (s->connecting) {
        if (wev->timedout) {
            ngx_http_credit_server_fail(s, "memcached connect timed out", 1);
            return;
        }

        if (ngx_http_credit_test_connect(s) != NGX_OK) {
            return;
        }
    }

    while (s->out_last > s->out_pos) {
        n = c->send(c, s->out_pos, s->out_last - s->out_pos);

        if (n == NGX_AGAIN) {
            break;
        }

        if (n == NGX_ERROR) {
            ngx_http_credit_server_fail(s, "memcached write failed", 1);
            return;
        }

        s->out_pos += n;
    }

    if (s->out_pos == s->out_last) {
        s->out_pos = s->out;
        s->out_last = s->out;
    }

    if (ngx_handle_write_event(wev, 0) != NGX_OK) {
        ngx_http_credit_server_fail(s, "memcached write failed", 1);
        return;
    }

    /* replies are due: give them the timeout */

    if (s->nsent && !c->read->timer_set) {
        ngx_add_timer(c->read, s->mc->timeout);
    }

    if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
        ngx_http_credit_server_fail(s, "memcached read failed", 1);
    }
}


static void
ngx_http_credit_read_handler(ngx_event_t *rev)
{
    size_t                     used;
    ssize_t                    n;
    ngx_int_t                  rc;
    ngx_connection_t          *c;
    ngx_http_credit_server_t  *s;

    c = rev->data;
    s = c->data;

    if (c->close) {

        /*
         * worker_shutdown_timeout: nginx closes every connection of the
         * exiting worker, and so do we, late replies or not
         */

        ngx_http_credit_mc_shutdown(s->mc);
        return;
    }

    if (rev->timedout) {
        rev->timedout = 0;
        ngx_http_credit_server_timeout(s);
        return;
    }

    /*
     * A connect in progress: its outcome first.  On success the write
     * handler, woken with this one, sends what waits.
     */

    if (s->connecting && ngx_http_credit_test_connect(s) != NGX_OK) {
        return;
    }

    for ( ;; ) {

        if (s->in_pos > s->in) {
            used = s->in_last - s->in_pos;
            ngx_memmove(s->in, s->in_pos, used);
            s->in_pos = s->in;
            s->in_last = s->in + used;
        }

        if (s->in_last == s->in + NGX_HTTP_CREDIT_MC_IN) {
            ngx_http_credit_server_fail(s, "memcached reply too long", 1);
            return;
        }

        n = c->recv(c, s->in_last, s->in + NGX_HTTP_CREDIT_MC_IN - s->in_last);

        if (n == NGX_AGAIN) {
            break;
        }

        if (n == 0 || n == NGX_ERROR) {

            /* an idle connection closed by a restart is not a failure */

            ngx_http_credit_server_fail(s, "memcached closed the connection",
                                        s->nsent > 0);
            return;
        }

        s->in_last += n;

        /* it answers: it is up */

        s->silent = 0;
        s->down_until = 0;

        if (rev->timer_set) {
            ngx_del_timer(rev);
        }

        rc = ngx_http_credit_parse(s);

        if (rc == NGX_ERROR) {
            ngx_http_credit_server_fail(s, "invalid memcached reply", 1);
            return;
        }

        if (s->c == NULL) {
            return;
        }
    }

    if (s->nsent && !rev->timer_set) {
        ngx_add_timer(rev, s->mc->timeout);
    }

    if (ngx_handle_read_event(rev, 0) != NGX_OK) {
        ngx_http_credit_server_fail(s, "memcached read failed", 1);
    }
}


/* hands every complete reply in the buffer to its operation, in order */

static ngx_int_t
ngx_http_credit_parse(ngx_http_credit_server_t *s)
{
    u_char                    *p, *eol, *data, *sp;
    size_t                     len;
    ngx_int_t                  rc, bytes;
    ngx_queue_t               *q;
    ngx_http_credit_op_t      *op;
    ngx_http_credit_reply_t    reply;

    while (s->c && s->in_pos < s->in_last) {

        if (s->skip) {
            len = ngx_min((size_t) (s->in_last - s->in_pos), s->skip);
            s->in_pos += len;
            s->skip -= len;
            continue;
        }

        p = s->in_pos;

        eol = ngx_strlcasestrn(p, s->in_last, (u_char *) "\r\n", 2 - 1);
        if (eol == NULL) {
            return NGX_OK;
        }

        if (ngx_queue_empty(&s->sent)) {
            return NGX_ERROR;
        }

        q = ngx_queue_head(&s->sent);
        op = ngx_queue_data(q, ngx_http_credit_op_t, mc_queue);

        ngx_memzero(&reply, sizeof(ngx_http_credit_reply_t));
        len = eol - p;

        if (op->expect == NGX_HTTP_CREDIT_EXPECT_STATS) {

            /*
             * Two replies of "STAT name value" lines, each ending with
             * "END" on a line of its own.  A proxy in front of memcached
             * may answer the second, "stats settings", with an error; an
             * error to the first ends the connection.
             */

            if (ngx_http_credit_error_line(p, len)) {

                if (s->hello_parts == 2) {
                    ngx_http_credit_refused(s, p, len);
                    return NGX_OK;
                }

                s->in_pos = eol + 2;

            } else {
                if (s->in_last - p >= 5
                    && ngx_strncmp(p, "END\r\n", 5) == 0)
                {
                    data = p;

                } else {
                    data = ngx_strlcasestrn(p, s->in_last,
                                            (u_char *) "\r\nEND\r\n",
                                            7 - 1);
                    if (data == NULL) {
                        return NGX_OK;
                    }

                    data += 2;
                }

                rc = ngx_http_credit_stats(s, p, data);

                if (rc == NGX_DECLINED) {
                    ngx_http_credit_server_fail(s, "memcached too old", 1);
                    return NGX_OK;
                }

                if (rc != NGX_OK) {
                    return NGX_ERROR;
                }

                s->in_pos = data + 5;
            }

            if (--s->hello_parts) {
                continue;
            }

            ngx_queue_remove(q);
            s->nsent--;
            continue;
        }

        if (len >= 2 && p[0] == 'V' && p[1] == 'A') {

            if (op->expect != NGX_HTTP_CREDIT_EXPECT_VALUE) {
                return NGX_ERROR;
            }

            /* VA <bytes> c<cas> */

            sp = ngx_strlchr(p + 3, eol, ' ');
            if (sp == NULL) {
                sp = eol;
            }

            bytes = ngx_atoi(p + 3, sp - p - 3);
            if (bytes == NGX_ERROR || bytes > NGX_HTTP_CREDIT_MC_ITEM_MAX) {
                return NGX_ERROR;
            }

            data = eol + 2;

            reply.type = NGX_HTTP_CREDIT_REPLY_VALUE;
            reply.value.data = data;
            reply.cas = ngx_http_credit_flag(p, eol, 'c');

            if (bytes > NGX_HTTP_CREDIT_MC_VALUE) {

                /*
                 * Not a balance, and maybe more than the buffer holds:
                 * the operation gets an empty value, which is no balance
                 * either (the store logs it), and the value and its CRLF
                 * are dropped as they arrive.  The connection and the
                 * other accounts on this server are not affected.
                 */

                reply.value.len = 0;

                s->in_pos = data;
                s->skip = bytes + 2;

            } else {

                if (s->in_last - data < bytes + 2) {
                    return NGX_OK;              /* not all there yet */
                }

                if (data[bytes] != CR || data[bytes + 1] != LF) {
                    return NGX_ERROR;
                }

                reply.value.len = bytes;

                s->in_pos = data + bytes + 2;
            }

        } else {
            s->in_pos = eol + 2;

            if (len >= 2 && p[0] == 'E' && p[1] == 'N') {
                reply.type = NGX_HTTP_CREDIT_REPLY_MISS;

            } else if (len >= 2 && p[0] == 'H' && p[1] == 'D') {
                reply.type = NGX_HTTP_CREDIT_REPLY_STORED;
                reply.cas = ngx_http_credit_flag(p, eol, 'c');

            } else if (len >= 2
                       && ((p[0] == 'E' && p[1] == 'X')
                           || (p[0] == 'N' && p[1] == 'F')
                           || (p[0] == 'N' && p[1] == 'S')))
            {
                reply.type = NGX_HTTP_CREDIT_REPLY_CONFLICT;

            } else {
                reply.type = NGX_HTTP_CREDIT_REPLY_ERROR;
                reply.err = "memcached refused the command";

                ngx_log_error(NGX_LOG_ERR, s->mc->log, 0,
                              "credit: memcached %V answered \"%*s\" to a "
                              "command on \"%s\"", &s->addr->name,
                              ngx_min(len, 128), p, op->key);
            }

            /* a read gets "EN", a write anything else but "EN" */

            if (reply.type != NGX_HTTP_CREDIT_REPLY_ERROR
                && (op->expect == NGX_HTTP_CREDIT_EXPECT_VALUE)
                   != (reply.type == NGX_HTTP_CREDIT_REPLY_MISS))
            {
                return NGX_ERROR;
            }
        }

        ngx_queue_remove(q);
        s->nsent--;

        /* may queue more commands, to this server or others */
        ngx_http_credit_op_reply(op, &reply);
    }

    if (s->in_pos == s->in_last) {
        s->in_pos = s->in;
        s->in_last = s->in;
    }

    return NGX_OK;
}


/*
 * The worker's graceful shutdown ran out of worker_shutdown_timeout: every
 * connection is closed and nothing more is sent.  The writes sent and not
 * answered, timed out or not, have an unknown outcome and are logged.
 */

void
ngx_http_credit_mc_shutdown(ngx_http_credit_mc_t *mc)
{
    ngx_uint_t  i;

    if (mc->shut) {
        return;
    }

    mc->shut = 1;

    ngx_log_error(NGX_LOG_NOTICE, mc->log, 0,
                  "credit: worker_shutdown_timeout: closing the memcached "
                  "connections");

    for (i = 0; i < mc->nservers; i++) {
        ngx_http_credit_server_fail(&mc->servers[i], "the worker is exiting",
                                    0);
    }
}


ngx_uint_t
ngx_http_credit_mc_is_shut(ngx_http_credit_mc_t *mc)
{
    return mc->shut;
}


/*
 * No reply within the timeout.  The operations waiting fail now (their
 * requests get 503, or pass with credit_fail open), and the server is
 * down for retry_timeout.  But the connection is kept: a stalled memcached
 * still runs the commands it was sent when it wakes up, so each operation
 * leaves a ghost in the reply queue that settles a write landing late
 * (ngx_http_credit_op_ghost()).  A connection silent for
 * NGX_HTTP_CREDIT_MC_ABANDON is closed, and the writes still in doubt are
 * logged.
 */

static void
ngx_http_credit_server_timeout(ngx_http_credit_server_t *s)
{
    ngx_uint_t                 n;
    ngx_queue_t                failed, *q, *next;
    ngx_http_credit_op_t      *op, *ghost;

    if (!s->silent) {
        s->silent = 1;
        s->silent_since = ngx_current_msec;
    }

    if (ngx_current_msec - s->silent_since >= NGX_HTTP_CREDIT_MC_ABANDON) {
        ngx_http_credit_server_fail(s, "memcached did not answer for 60 s",
                                    1);
        return;
    }

    ngx_queue_init(&failed);
    n = 0;

    for (q = ngx_queue_head(&s->sent);
         q != ngx_queue_sentinel(&s->sent);
         q = next)
    {
        next = ngx_queue_next(q);
        op = ngx_queue_data(q, ngx_http_credit_op_t, mc_queue);

        if (op->expect == NGX_HTTP_CREDIT_EXPECT_STATS || op->ghost) {
            continue;
        }

        ghost = ngx_http_credit_op_ghost(op);

        if (ghost == NULL) {
            /* no ghost, no order: fail them all, then these */
            ngx_http_credit_server_fail(s, "memcached timed out", 1);
            break;
        }

        ngx_queue_insert_after(q, &ghost->mc_queue);
        ngx_queue_remove(q);
        ngx_queue_insert_tail(&failed, q);
        n++;
    }

    if (s->c) {
        if (n) {
            ngx_http_credit_server_down(s, "memcached timed out", n);
        }

        ngx_add_timer(s->c->read, s->mc->timeout);
    }

    ngx_http_credit_fail_ops(&failed, "memcached timed out");
}


/*
 * Closes the connection and fails every operation waiting on it: the ones
 * sent and the ones still in the output buffer.  mark_down: requests fail
 * at once for retry_timeout, then the server is tried again.
 */

static void
ngx_http_credit_server_fail(ngx_http_credit_server_t *s, const char *reason,
    ngx_uint_t mark_down)
{
    size_t                 unsent;
    ngx_uint_t             n;
    ngx_queue_t            failed, *q;
    ngx_http_credit_op_t  *op;

    /*
     * A write whose command was written whole may have been applied before
     * the connection failed: its outcome is unknown.  The commands still
     * in the output buffer, the last ones queued, were not.
     */

    unsent = s->out_last - s->out_pos;
    n = 0;

    for (q = ngx_queue_last(&s->sent);
         q != ngx_queue_sentinel(&s->sent);
         q = ngx_queue_prev(q))
    {
        op = ngx_queue_data(q, ngx_http_credit_op_t, mc_queue);

        /* the count leaves out the "stats" and the timed out ones */

        if (op->expect != NGX_HTTP_CREDIT_EXPECT_STATS && !op->ghost) {
            n++;
        }

        if (unsent) {
            unsent -= ngx_min(unsent, op->cmd_len);
            continue;
        }

        if (op->expect == NGX_HTTP_CREDIT_EXPECT_STORED && !op->ghost) {
            ngx_http_credit_op_lost(op, reason);
        }
    }

    if (mark_down) {
        ngx_http_credit_server_down(s, reason, n);
    }

    if (s->c) {
        ngx_close_connection(s->c);
        s->c = NULL;
    }

    s->connecting = 0;
    s->hello_parts = 0;
    s->silent = 0;
    s->instance = 0;
    s->out_pos = s->out;
    s->out_last = s->out;
    s->in_pos = s->in;
    s->in_last = s->in;
    s->skip = 0;

    if (s->flush.posted) {
        ngx_delete_posted_event(&s->flush);
    }

    /* take the queue out first: failing an op may queue new ones */

    ngx_queue_init(&failed);

    if (!ngx_queue_empty(&s->sent)) {
        ngx_queue_add(&failed, &s->sent);
        ngx_queue_init(&s->sent);
    }

    s->nsent = 0;

    ngx_http_credit_fail_ops(&failed, reason);
}


/*
 * A server failed with n operations (not counting its "stats" and the
 * timed out ones): logged, counted for credit_stats, and left alone for
 * retry_timeout.
 */

static void
ngx_http_credit_server_down(ngx_http_credit_server_t *s, const char *reason,
    ngx_uint_t n)
{
    ngx_log_error(NGX_LOG_ERR, s->mc->log, 0,
                  "credit: %s (%V), %ui operation%s failed", reason,
                  &s->addr->name, n, n == 1 ? "" : "s");

    ngx_http_credit_stats_mc_failure();

    s->down_until = ngx_time() + s->mc->retry_timeout;
}


/* gives each op of a queue taken out of a server an error reply */

static void
ngx_http_credit_fail_ops(ngx_queue_t *ops, const char *err)
{
    ngx_queue_t              *q;
    ngx_http_credit_op_t     *op;
    ngx_http_credit_reply_t   reply;

    ngx_memzero(&reply, sizeof(ngx_http_credit_reply_t));
    reply.type = NGX_HTTP_CREDIT_REPLY_ERROR;
    reply.err = err;

    while (!ngx_queue_empty(ops)) {
        q = ngx_queue_head(ops);
        ngx_queue_remove(q);

        op = ngx_queue_data(q, ngx_http_credit_op_t, mc_queue);

        if (op->expect == NGX_HTTP_CREDIT_EXPECT_STATS) {
            continue;                   /* the connection's own "stats" */
        }

        ngx_http_credit_op_reply(op, &reply);
    }
}


/* "STAT pid 123", "STAT uptime 45", "STAT time 1700000000" */

static ngx_int_t
ngx_http_credit_stats(ngx_http_credit_server_t *s, u_char *p, u_char *end)
{
    u_char      *eol, *v, *q;
    int64_t      n;
    uint64_t     pid, uptime, now, start;
    ngx_md5_t    md5;
    ngx_uint_t   i, evicts, version[3];
    u_char       d[16];

    pid = 0;
    uptime = 0;
    now = 0;
    evicts = 0;
    version[0] = 0;
    version[1] = 0;
    version[2] = 0;

    for ( /* void */ ; p < end; p = eol + 2) {
        eol = ngx_strlcasestrn(p, end + 2, (u_char *) "\r\n", 2 - 1);
        if (eol == NULL) {
            return NGX_ERROR;
        }

        if (eol - p < 5 || ngx_strncmp(p, "STAT ", 5) != 0) {
            return NGX_ERROR;
        }

        v = ngx_strlchr(p + 5, eol, ' ');
        if (v == NULL) {
            continue;
        }

        n = ngx_atoof(v + 1, eol - v - 1);

        if (v - p - 5 == 3 && ngx_strncmp(p + 5, "pid", 3) == 0) {
            pid = n;

        } else if (v - p - 5 == 6 && ngx_strncmp(p + 5, "uptime", 6) == 0) {
            uptime = n;

        } else if (v - p - 5 == 4 && ngx_strncmp(p + 5, "time", 4) == 0) {
            now = n;

        } else if (v - p - 5 == 9 && ngx_strncmp(p + 5, "evictions", 9) == 0)
        {
            /* "stats settings": "on" unless memcached runs with -M */

            evicts = (eol - v - 1 == 2 && ngx_strncmp(v + 1, "on", 2) == 0);

        } else if (v - p - 5 == 7 && ngx_strncmp(p + 5, "version", 7) == 0) {

            /* "1.6.18": up to three numbers, whatever follows them */

            q = v + 1;

            for (i = 0; i < 3 && q < eol && *q >= '0' && *q <= '9'; i++) {
                while (q < eol && *q >= '0' && *q <= '9') {
                    if (version[i] < 1000) {
                        version[i] = version[i] * 10 + (*q - '0');
                    }

                    q++;
                }

                if (q < eol && *q == '.') {
                    q++;
                }
            }
        }
    }

    if (s->hello_parts == 1) {

        /* the second reply, that of "stats settings" */

        if (evicts) {
            ngx_log_error(NGX_LOG_WARN, s->mc->log, 0,
                          "credit: memcached at %V evicts items when it is "
                          "full (it runs without -M): a balance it evicts "
                          "is lost", &s->addr->name);
        }

        return NGX_OK;
    }

    /*
     * The meta commands took their final form in memcached 1.6.10 ("HD"
     * for "OK", the length in "ms"): an older one would refuse every
     * command.  A "stats" without a version (a proxy) is given the
     * benefit of the doubt.
     */

    if (version[0] == 1
        && (version[1] < 6 || (version[1] == 6 && version[2] < 10)))
    {
        ngx_log_error(NGX_LOG_ERR, s->mc->log, 0,
                      "credit: memcached %ui.%ui.%ui at %V is too old: the "
                      "module needs memcached 1.6.10 or newer (its meta "
                      "commands)", version[0], version[1], version[2],
                      &s->addr->name);
        return NGX_DECLINED;
    }

    if (now == 0) {

        /*
         * No start time (a proxy): a restart of the memcached behind it
         * cannot be told, so its tokens are never trusted: instance 0
         * keeps the balance cache out of this server's charges
         */

        s->instance = 0;
        return NGX_OK;
    }

    /*
     * The pid and the start time (which does not change while the
     * instance runs) name it, with the server's name: two memcacheds may
     * share a pid and a start time (each the first process of its
     * container, started in the same second), and a token learnt from
     * one must never be offered to the other.
     */

    start = now - uptime;

    ngx_md5_init(&md5);
    ngx_md5_update(&md5, s->addr->name.data, s->addr->name.len);
    ngx_md5_update(&md5, &pid, sizeof(uint64_t));
    ngx_md5_update(&md5, &start, sizeof(uint64_t));
    ngx_md5_final(d, &md5);

    ngx_memcpy(&s->instance, d, sizeof(uint64_t));

    if (s->instance == 0) {
        s->instance = 1;
    }

    return NGX_OK;
}


/* "ERROR", "CLIENT_ERROR ...", "SERVER_ERROR ...": a command refused */

static ngx_uint_t
ngx_http_credit_error_line(u_char *p, size_t len)
{
    return (len >= 5 && ngx_strncmp(p, "ERROR", 5) == 0
            && (len == 5 || p[5] == ' '))
           || (len >= 12 && (ngx_strncmp(p, "CLIENT_ERROR", 12) == 0
                             || ngx_strncmp(p, "SERVER_ERROR", 12) == 0));
}


/*
 * An error instead of the "stats" that opens a connection: memcached at
 * its connection limit (-c) writes "ERROR Too many open connections" and
 * closes the connection.  The line names the cause in the log.  Nothing
 * is lost with the connection: until "stats" has named the instance, the
 * commands behind it are reads (the balance cache is not used).
 */

static void
ngx_http_credit_refused(ngx_http_credit_server_t *s, u_char *p, size_t len)
{
    u_char  line[64];
    size_t  i, n;

    /* a line from the network: printable and short in the log */

    n = ngx_min(len, sizeof(line));

    for (i = 0; i < n; i++) {
        line[i] = (p[i] >= 0x20 && p[i] < 0x7f) ? p[i] : '?';
    }

    ngx_log_error(NGX_LOG_ERR, s->mc->log, 0,
                  "credit: memcached %V refused the connection: \"%*s\"%s",
                  &s->addr->name, n, line, n < len ? "..." : "");

    ngx_http_credit_server_fail(s, "memcached refused the connection", 1);
}


/* the number after a one-letter flag of a meta reply: "c123" */

static uint64_t
ngx_http_credit_flag(u_char *p, u_char *last, u_char flag)
{
    u_char  *e;
    off_t    n;

    for ( ;; ) {
        p = ngx_strlchr(p, last, ' ');
        if (p == NULL || p + 1 >= last) {
            return 0;
        }

        p++;

        if (*p != flag) {
            continue;
        }

        e = ngx_strlchr(p, last, ' ');
        if (e == NULL) {
            e = last;
        }

        n = ngx_atoof(p + 1, e - p - 1);

        return (n == NGX_ERROR) ? 0 : (uint64_t) n;
    }
}
