
/*
 * ngx_http_credit_module: balances in memcached.
 *
 * An account is one memcached item, "PLAN PACK" in decimal, changed only
 * by gets + cas: a charge reads both buckets, decides, and writes back
 * only if nobody wrote in between, else it reads again.  So a charge
 * never overdraws, and a refusal is always made against a balance that
 * really was there.
 *
 * libmemcached blocks, so every operation runs in an nginx thread pool
 * and the request resumes on the completion event.  Concurrent charges of
 * one account in a worker are queued behind the one in flight and then
 * decided together in one gets + cas (a batch), so a hot account costs one
 * round trip for many requests instead of a storm of cas conflicts.
 */


#include "ngx_http_credit_module.h"

#include <ngx_sha1.h>

#include <libmemcached/memcached.h>
#include <libmemcachedutil-1.0/pool.h>


#define NGX_HTTP_CREDIT_CAS_TRIES   100
#define NGX_HTTP_CREDIT_VALUE_LEN   (2 * NGX_INT64_LEN + 2)


typedef struct {
    ngx_str_node_t               sn;          /* key: the memcached key */
    ngx_http_credit_rec_t       *head;        /* waiting charges */
    ngx_http_credit_rec_t       *tail;
    size_t                       len;
    u_char                       key[NGX_HTTP_CREDIT_KEY_MAX + 1];
} ngx_http_credit_flight_t;


struct ngx_http_credit_store_s {
    memcached_st                *master;
    memcached_pool_st           *pool;
    ngx_thread_pool_t           *thread_pool;
    ngx_rbtree_t                 flights;
    ngx_rbtree_node_t            sentinel;
    ngx_uint_t                   max_batch;
    ngx_log_t                   *log;
};


/* one charge of a batch, as the thread sees it */


typedef struct {
    int64_t                      cost;
    ngx_uint_t                   rc;
    int64_t                      plan_charged;
    int64_t                      pack_charged;
    int64_t                      remaining;
} ngx_http_credit_item_t;


static void ngx_http_credit_op_run(void *data, ngx_log_t *log);
static void ngx_http_credit_op_event(ngx_event_t *ev);
static void ngx_http_credit_charge_done(ngx_http_credit_op_t *op);
static ngx_int_t ngx_http_credit_charge_post(ngx_http_credit_store_t *store,
    ngx_http_credit_flight_t *fl, ngx_log_t *log);
static ngx_http_credit_flight_t *ngx_http_credit_flight_find(
    ngx_http_credit_store_t *store, ngx_str_t *key, uint32_t hash);
static ngx_uint_t ngx_http_credit_read(memcached_st *mc,
    ngx_http_credit_op_t *op, uint64_t *cas, ngx_uint_t *exists);
static ngx_uint_t ngx_http_credit_write(memcached_st *mc,
    ngx_http_credit_op_t *op, uint64_t cas, ngx_uint_t exists,
    int64_t plan, int64_t pack);
static void ngx_http_credit_decide(ngx_http_credit_op_t *op);
static void ngx_http_credit_mc_error(memcached_st *mc,
    ngx_http_credit_op_t *op, memcached_return_t rc, const char *what);


ngx_int_t
ngx_http_credit_store_init(ngx_cycle_t *cycle,
    ngx_http_credit_main_conf_t *cmcf)
{
    u_char                   *host;
    ngx_str_t                *s;
    ngx_uint_t                i, port;
    memcached_st             *mc;
    memcached_return_t        rc;
    ngx_http_credit_store_t  *store;

    store = ngx_pcalloc(cycle->pool, sizeof(ngx_http_credit_store_t));
    if (store == NULL) {
        return NGX_ERROR;
    }

    mc = memcached_create(NULL);
    if (mc == NULL) {
        return NGX_ERROR;
    }

    s = cmcf->servers.elts;

    for (i = 0; i < cmcf->servers.nelts; i++) {
        host = ngx_pnalloc(cycle->pool, s[i].len + 1);
        if (host == NULL) {
            memcached_free(mc);
            return NGX_ERROR;
        }

        ngx_memcpy(host, s[i].data, s[i].len);
        host[s[i].len] = '\0';

        host[ngx_strlchr(host, host + s[i].len, ':') - host] = '\0';
        port = ngx_atoi(host + ngx_strlen(host) + 1,
                        s[i].len - ngx_strlen(host) - 1);

        rc = memcached_server_add(mc, (char *) host, (in_port_t) port);
        if (rc != MEMCACHED_SUCCESS) {
            ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                          "credit: cannot add memcached server \"%V\": %s",
                          &s[i], memcached_strerror(mc, rc));
            memcached_free(mc);
            return NGX_ERROR;
        }
    }

    /*
     * ketama: an account lives on one server and adding a server moves
     * few accounts; no auto eject, so an account is never silently moved
     * to a server holding a stale or empty balance.
     */

    memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_KETAMA, 1);
    memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_AUTO_EJECT_HOSTS, 0);
    memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_SUPPORT_CAS, 1);
    memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_TCP_NODELAY, 1);
    memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_CONNECT_TIMEOUT,
                           cmcf->connect_timeout);
    memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_POLL_TIMEOUT,
                           cmcf->timeout);
    memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_RCV_TIMEOUT,
                           cmcf->timeout * 1000);
    memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_SND_TIMEOUT,
                           cmcf->timeout * 1000);
    memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_RETRY_TIMEOUT,
                           cmcf->retry_timeout);

    store->pool = memcached_pool_create(mc, 1, 1024);
    if (store->pool == NULL) {
        memcached_free(mc);
        return NGX_ERROR;
    }

    store->master = mc;
    store->thread_pool = cmcf->thread_pool;
    store->max_batch = cmcf->max_batch;
    store->log = cycle->log;

    ngx_rbtree_init(&store->flights, &store->sentinel,
                    ngx_str_rbtree_insert_value);

    cmcf->store = store;

    return NGX_OK;
}


void
ngx_http_credit_store_exit(ngx_http_credit_main_conf_t *cmcf)
{
    ngx_http_credit_store_t  *store;

    store = cmcf->store;

    memcached_pool_destroy(store->pool);
    memcached_free(store->master);

    cmcf->store = NULL;
}


/*
 * The memcached key of an account: the prefix, then the id with every
 * byte outside [A-Za-z0-9._~:@!$'()*+,;-] as %XX, which is injective and
 * leaves no space or control byte for the protocol.  An id whose key
 * would pass 250 bytes is keyed by "#" and its SHA-1 instead ("#" never
 * appears in the escaped form, so the two kinds cannot meet).
 */

ngx_int_t
ngx_http_credit_make_key(ngx_pool_t *pool, ngx_str_t *prefix,
    ngx_str_t *account, ngx_str_t *key)
{
    u_char       *p, c;
    size_t        len;
    ngx_uint_t    i;
    ngx_sha1_t    sha1;
    u_char        digest[20];

    static u_char  hex[] = "0123456789abcdef";

    static uint32_t  safe[] = {
        0xffffffff, /* 1111 1111 1111 1111  1111 1111 1111 1111 */

                    /* ?>=< ;:98 7654 3210  /.-, +*)( '&%$ #"!  */
        0xa4008462, /* 1010 0100 0000 0000  1000 0100 0110 0010 */

                    /* _^]\ [ZYX WVUT SRQP  ONML KJIH GFED CBA@ */
        0x78000000, /* 0111 1000 0000 0000  0000 0000 0000 0000 */

                    /*  ~}| {zyx wvut srqp  onml kjih gfed cba` */
        0xb8000001, /* 1011 1000 0000 0000  0000 0000 0000 0001 */

        0xffffffff, /* 1111 1111 1111 1111  1111 1111 1111 1111 */
        0xffffffff, /* 1111 1111 1111 1111  1111 1111 1111 1111 */
        0xffffffff, /* 1111 1111 1111 1111  1111 1111 1111 1111 */
        0xffffffff  /* 1111 1111 1111 1111  1111 1111 1111 1111 */
    };

    /* safe[] marks the bytes to escape */

    len = prefix->len;

    for (i = 0; i < account->len; i++) {
        c = account->data[i];
        len += (safe[c >> 5] & (1U << (c & 0x1f))) ? 3 : 1;
    }

    if (len <= NGX_HTTP_CREDIT_KEY_MAX) {
        p = ngx_pnalloc(pool, len);
        if (p == NULL) {
            return NGX_ERROR;
        }

        key->data = p;
        p = ngx_cpymem(p, prefix->data, prefix->len);

        for (i = 0; i < account->len; i++) {
            c = account->data[i];

            if (safe[c >> 5] & (1U << (c & 0x1f))) {
                *p++ = '%';
                *p++ = hex[c >> 4];
                *p++ = hex[c & 0xf];

            } else {
                *p++ = c;
            }
        }

        key->len = p - key->data;

        return NGX_OK;
    }

    ngx_sha1_init(&sha1);
    ngx_sha1_update(&sha1, account->data, account->len);
    ngx_sha1_final(digest, &sha1);

    p = ngx_pnalloc(pool, prefix->len + 1 + 40);
    if (p == NULL) {
        return NGX_ERROR;
    }

    key->data = p;
    p = ngx_cpymem(p, prefix->data, prefix->len);
    *p++ = '#';
    p = ngx_hex_dump(p, digest, 20);
    key->len = p - key->data;

    return NGX_OK;
}


/*
 * Charges rec->cost to rec->key.  NGX_AGAIN: the request waits for
 * ngx_http_credit_charged(); NGX_ERROR: the store could not take it.
 */

ngx_int_t
ngx_http_credit_charge(ngx_http_request_t *r, ngx_http_credit_rec_t *rec)
{
    uint32_t                      hash;
    ngx_http_credit_flight_t     *fl;
    ngx_http_credit_store_t      *store;
    ngx_http_credit_main_conf_t  *cmcf;

    cmcf = ngx_http_get_module_main_conf(r, ngx_http_credit_module);
    store = cmcf->store;

    if (store == NULL) {
        return NGX_ERROR;
    }

    rec->next = NULL;

    hash = ngx_crc32_short(rec->key.data, rec->key.len);

    fl = ngx_http_credit_flight_find(store, &rec->key, hash);

    if (fl) {
        /* a charge of this account is in flight: join the next batch */

        fl->tail->next = rec;
        fl->tail = rec;

        return NGX_AGAIN;
    }

    fl = ngx_alloc(sizeof(ngx_http_credit_flight_t), r->connection->log);
    if (fl == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(fl->key, rec->key.data, rec->key.len);
    fl->len = rec->key.len;
    fl->sn.node.key = hash;
    fl->sn.str.data = fl->key;
    fl->sn.str.len = fl->len;
    fl->head = rec;
    fl->tail = rec;

    ngx_rbtree_insert(&store->flights, &fl->sn.node);

    if (ngx_http_credit_charge_post(store, fl, r->connection->log)
        != NGX_OK)
    {
        ngx_rbtree_delete(&store->flights, &fl->sn.node);
        ngx_free(fl);
        return NGX_ERROR;
    }

    return NGX_AGAIN;
}


/* sends the waiting charges of a flight as one batch */

static ngx_int_t
ngx_http_credit_charge_post(ngx_http_credit_store_t *store,
    ngx_http_credit_flight_t *fl, ngx_log_t *log)
{
    ngx_str_t                 key;
    ngx_uint_t                n;
    ngx_http_credit_op_t     *op;
    ngx_http_credit_rec_t    *rec;
    ngx_http_credit_item_t   *items;

    n = 0;
    for (rec = fl->head; rec && n < store->max_batch; rec = rec->next) {
        n++;
    }

    key.data = fl->key;
    key.len = fl->len;

    op = ngx_http_credit_op_create(log, NGX_HTTP_CREDIT_OP_CHARGE, &key);
    if (op == NULL) {
        return NGX_ERROR;
    }

    items = ngx_alloc(n * sizeof(ngx_http_credit_item_t), log);
    if (items == NULL) {
        ngx_http_credit_op_free(op);
        return NGX_ERROR;
    }

    /* detach the batch from the queue; later arrivals wait for the next */

    op->batch = fl->head;
    op->nbatch = n;
    op->data = items;
    op->done = ngx_http_credit_charge_done;

    rec = fl->head;

    for (n = 0; n < op->nbatch; n++) {
        items[n].cost = rec->cost;
        items[n].rc = NGX_HTTP_CREDIT_RC_FAIL;

        if (n + 1 == op->nbatch) {
            fl->head = rec->next;
            rec->next = NULL;
            break;
        }

        rec = rec->next;
    }

    if (fl->head == NULL) {
        fl->tail = NULL;
    }

    op->store = store;

    if (ngx_http_credit_op_post(NULL, op) != NGX_OK) {

        /* put the batch back in front, the caller fails them */

        rec->next = fl->head;
        fl->head = op->batch;
        if (fl->tail == NULL) {
            fl->tail = rec;
        }

        ngx_free(items);
        ngx_http_credit_op_free(op);
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_http_credit_charge_done(ngx_http_credit_op_t *op)
{
    uint32_t                   hash;
    ngx_str_t                  key;
    ngx_uint_t                 i;
    ngx_http_credit_rec_t     *rec, *next;
    ngx_http_credit_item_t    *items;
    ngx_http_credit_store_t   *store;
    ngx_http_credit_flight_t  *fl;

    store = op->store;
    items = op->data;

    if (op->err[0]) {
        ngx_log_error(NGX_LOG_ERR, store->log, 0,
                      "credit: memcached charge of \"%s\" failed: %s",
                      op->key, op->err);
    }

    key.data = op->key;
    key.len = op->key_len;
    hash = ngx_crc32_short(key.data, key.len);

    fl = ngx_http_credit_flight_find(store, &key, hash);

    /* start the next batch before resuming this one's requests */

    while (fl && fl->head) {
        if (ngx_http_credit_charge_post(store, fl, store->log) == NGX_OK) {
            break;
        }

        /* the thread pool refused: fail the waiting ones */

        for (rec = fl->head; rec; rec = next) {
            next = rec->next;
            rec->next = NULL;
            ngx_http_credit_charged(rec, NGX_HTTP_CREDIT_RC_FAIL);
        }

        fl->head = NULL;
        fl->tail = NULL;
    }

    if (fl && fl->head == NULL) {
        ngx_rbtree_delete(&store->flights, &fl->sn.node);
        ngx_free(fl);
    }

    rec = op->batch;

    for (i = 0; i < op->nbatch; i++) {
        next = rec->next;
        rec->next = NULL;

        if (op->rc == NGX_HTTP_CREDIT_RC_FAIL) {
            items[i].rc = NGX_HTTP_CREDIT_RC_FAIL;
        }

        if (items[i].rc != NGX_HTTP_CREDIT_RC_FAIL) {
            rec->plan_charged = items[i].plan_charged;
            rec->pack_charged = items[i].pack_charged;
            rec->remaining = items[i].remaining;
            rec->has_remaining = 1;
        }

        ngx_http_credit_charged(rec, items[i].rc);

        rec = next;
    }

    ngx_free(items);
    ngx_http_credit_op_free(op);
}


static ngx_http_credit_flight_t *
ngx_http_credit_flight_find(ngx_http_credit_store_t *store, ngx_str_t *key,
    uint32_t hash)
{
    return (ngx_http_credit_flight_t *)
               ngx_str_rbtree_lookup(&store->flights, key, hash);
}


ngx_http_credit_op_t *
ngx_http_credit_op_create(ngx_log_t *log, ngx_uint_t type, ngx_str_t *key)
{
    ngx_thread_task_t     *task;
    ngx_http_credit_op_t  *op;

    if (key->len > NGX_HTTP_CREDIT_KEY_MAX) {
        return NULL;
    }

    task = ngx_alloc(sizeof(ngx_thread_task_t) + sizeof(ngx_http_credit_op_t),
                     log);
    if (task == NULL) {
        return NULL;
    }

    ngx_memzero(task, sizeof(ngx_thread_task_t)
                      + sizeof(ngx_http_credit_op_t));

    op = (ngx_http_credit_op_t *) (task + 1);

    task->ctx = op;
    task->handler = ngx_http_credit_op_run;
    task->event.handler = ngx_http_credit_op_event;
    task->event.data = task;
    task->event.log = log;

    op->type = type;
    op->log = log;
    ngx_memcpy(op->key, key->data, key->len);
    op->key[key->len] = '\0';
    op->key_len = key->len;

    return op;
}


void
ngx_http_credit_op_free(ngx_http_credit_op_t *op)
{
    ngx_free((ngx_thread_task_t *) op - 1);
}


ngx_int_t
ngx_http_credit_op_post(ngx_http_credit_main_conf_t *cmcf,
    ngx_http_credit_op_t *op)
{
    ngx_thread_task_t  *task;

    if (cmcf) {
        if (cmcf->store == NULL) {
            return NGX_ERROR;
        }

        op->store = cmcf->store;
    }

    task = (ngx_thread_task_t *) op - 1;

    /* the task's log must outlive the request: use the worker's */

    op->log = op->store->log;
    task->event.log = op->log;

    return ngx_thread_task_post(op->store->thread_pool, task);
}


static void
ngx_http_credit_op_event(ngx_event_t *ev)
{
    ngx_thread_task_t     *task;
    ngx_http_credit_op_t  *op;

    task = ev->data;
    op = task->ctx;

    op->done(op);
}


/* runs in a thread of the pool: only op and libmemcached are touched */

static void
ngx_http_credit_op_run(void *data, ngx_log_t *log)
{
    ngx_http_credit_op_t *op = data;

    int64_t                   plan, pack;
    uint64_t                  cas;
    ngx_uint_t                tries, exists, rc;
    memcached_st             *mc;
    memcached_return_t        mrc;
    struct timespec           wait;

    wait.tv_sec = 5;
    wait.tv_nsec = 0;

    mc = memcached_pool_fetch(op->store->pool, &wait, &mrc);
    if (mc == NULL) {
        ngx_cpystrn((u_char *) op->err, (u_char *) "no memcached connection",
                    sizeof(op->err));
        op->rc = NGX_HTTP_CREDIT_RC_FAIL;
        return;
    }

    for (tries = 0; tries < NGX_HTTP_CREDIT_CAS_TRIES; tries++) {

        rc = ngx_http_credit_read(mc, op, &cas, &exists);
        if (rc != NGX_HTTP_CREDIT_RC_OK) {
            break;
        }

        switch (op->type) {

        case NGX_HTTP_CREDIT_OP_GET:
            goto done;

        case NGX_HTTP_CREDIT_OP_CHARGE:
            plan = op->plan;
            pack = op->pack;

            ngx_http_credit_decide(op);

            if (plan == op->plan && pack == op->pack) {
                goto done;      /* nothing charged: no write needed */
            }

            break;

        case NGX_HTTP_CREDIT_OP_SET_PLAN:
            op->plan = op->plan_amount;
            break;

        default: /* NGX_HTTP_CREDIT_OP_REFUND, NGX_HTTP_CREDIT_OP_ADD_PACK */
            op->plan += op->plan_amount;
            op->pack += op->pack_amount;

            if (op->plan > NGX_HTTP_CREDIT_MAX_COST
                || op->pack > NGX_HTTP_CREDIT_MAX_COST)
            {
                ngx_cpystrn((u_char *) op->err,
                            (u_char *) "balance would be too large",
                            sizeof(op->err));
                rc = NGX_HTTP_CREDIT_RC_SHORT;
                goto failed;
            }

            break;
        }

        rc = ngx_http_credit_write(mc, op, cas, exists, op->plan, op->pack);

        if (rc == NGX_HTTP_CREDIT_RC_OK) {
            goto done;
        }

        if (rc == NGX_HTTP_CREDIT_RC_FAIL) {
            break;
        }

        /* NGX_HTTP_CREDIT_RC_SHORT: somebody wrote first, read again */
        op->retries++;
    }

    if (tries == NGX_HTTP_CREDIT_CAS_TRIES) {
        ngx_cpystrn((u_char *) op->err, (u_char *) "too many cas conflicts",
                    sizeof(op->err));
    }

    rc = NGX_HTTP_CREDIT_RC_FAIL;

failed:

    op->rc = rc;
    memcached_pool_release(op->store->pool, mc);
    return;

done:

    op->rc = NGX_HTTP_CREDIT_RC_OK;
    memcached_pool_release(op->store->pool, mc);
}


/*
 * Decides a batch of charges against op->plan and op->pack, in order:
 * plan first, then pack; a charge that does not fit takes nothing.
 */

static void
ngx_http_credit_decide(ngx_http_credit_op_t *op)
{
    int64_t                  cost, from_plan;
    ngx_uint_t               i;
    ngx_http_credit_item_t  *it;

    it = op->data;

    for (i = 0; i < op->nbatch; i++) {
        cost = it[i].cost;

        if (op->plan + op->pack < cost) {
            it[i].rc = NGX_HTTP_CREDIT_RC_SHORT;
            it[i].plan_charged = 0;
            it[i].pack_charged = 0;
            it[i].remaining = op->plan + op->pack;
            continue;
        }

        from_plan = ngx_min(cost, op->plan);

        op->plan -= from_plan;
        op->pack -= cost - from_plan;

        it[i].rc = NGX_HTTP_CREDIT_RC_OK;
        it[i].plan_charged = from_plan;
        it[i].pack_charged = cost - from_plan;
        it[i].remaining = op->plan + op->pack;
    }
}


static ngx_uint_t
ngx_http_credit_read(memcached_st *mc, ngx_http_credit_op_t *op,
    uint64_t *cas, ngx_uint_t *exists)
{
    u_char              *p, *last, *sp;
    size_t               len;
    const char          *key;
    ngx_int_t            plan, pack;
    memcached_result_st  result, *res;
    memcached_return_t   rc;

    key = (const char *) op->key;
    len = op->key_len;

    rc = memcached_mget(mc, &key, &len, 1);
    if (rc != MEMCACHED_SUCCESS) {
        ngx_http_credit_mc_error(mc, op, rc, "gets");
        return NGX_HTTP_CREDIT_RC_FAIL;
    }

    if (memcached_result_create(mc, &result) == NULL) {
        ngx_cpystrn((u_char *) op->err, (u_char *) "out of memory",
                    sizeof(op->err));
        return NGX_HTTP_CREDIT_RC_FAIL;
    }

    *exists = 0;
    *cas = 0;
    op->plan = 0;
    op->pack = 0;
    plan = 0;
    pack = 0;

    for ( ;; ) {
        res = memcached_fetch_result(mc, &result, &rc);
        if (res == NULL) {
            break;
        }

        p = (u_char *) memcached_result_value(res);
        last = p + memcached_result_length(res);
        sp = ngx_strlchr(p, last, ' ');

        if (sp == NULL
            || (plan = ngx_atoof(p, sp - p)) == NGX_ERROR
            || (pack = ngx_atoof(sp + 1, last - sp - 1)) == NGX_ERROR)
        {
            ngx_cpystrn((u_char *) op->err,
                        (u_char *) "malformed balance item",
                        sizeof(op->err));
            memcached_result_free(&result);
            return NGX_HTTP_CREDIT_RC_FAIL;
        }

        *exists = 1;
        *cas = memcached_result_cas(res);
    }

    memcached_result_free(&result);

    if (rc != MEMCACHED_END && rc != MEMCACHED_SUCCESS
        && rc != MEMCACHED_NOTFOUND)
    {
        ngx_http_credit_mc_error(mc, op, rc, "gets");
        return NGX_HTTP_CREDIT_RC_FAIL;
    }

    op->plan = plan;
    op->pack = pack;

    return NGX_HTTP_CREDIT_RC_OK;
}


/* OK: written; SHORT: lost a race, read again; FAIL: memcached failed */

static ngx_uint_t
ngx_http_credit_write(memcached_st *mc, ngx_http_credit_op_t *op,
    uint64_t cas, ngx_uint_t exists, int64_t plan, int64_t pack)
{
    u_char              *p;
    memcached_return_t   rc;
    u_char               value[NGX_HTTP_CREDIT_VALUE_LEN];

    p = ngx_sprintf(value, "%L %L", plan, pack);

    if (exists) {
        rc = memcached_cas(mc, (char *) op->key, op->key_len, (char *) value,
                           p - value, 0, 0, cas);

    } else {
        rc = memcached_add(mc, (char *) op->key, op->key_len, (char *) value,
                           p - value, 0, 0);
    }

    switch (rc) {

    case MEMCACHED_SUCCESS:
    case MEMCACHED_STORED:
        return NGX_HTTP_CREDIT_RC_OK;

    case MEMCACHED_DATA_EXISTS:
    case MEMCACHED_NOTSTORED:
    case MEMCACHED_NOTFOUND:
        return NGX_HTTP_CREDIT_RC_SHORT;

    default:
        ngx_http_credit_mc_error(mc, op, rc, exists ? "cas" : "add");
        return NGX_HTTP_CREDIT_RC_FAIL;
    }
}


static void
ngx_http_credit_mc_error(memcached_st *mc, ngx_http_credit_op_t *op,
    memcached_return_t rc, const char *what)
{
    u_char  *p;

    p = ngx_snprintf((u_char *) op->err, sizeof(op->err) - 1, "%s: %s",
                     what, memcached_last_error_message(mc));
    *p = '\0';

    (void) rc;
}
