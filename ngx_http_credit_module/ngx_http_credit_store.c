
/*
 * ngx_http_credit_module: balances in memcached.
 *
 * An account is one memcached item, "PLAN PACK" in decimal, changed only
 * by gets + cas: a charge reads both buckets, decides, and writes back
 * only if nobody wrote in between, else it reads again.  So a charge
 * never overdraws, and a refusal is always made against a balance that
 * really was there.
 *
 * In each worker every operation on a key goes through that key's queue:
 * one operation per key is in flight, and the charges waiting behind it
 * are then decided together in one gets + cas (a batch), so a hot account
 * costs one round trip for many requests instead of a storm of cas
 * conflicts.  The commands travel over the event-loop client in
 * ngx_http_credit_memcached.c; nothing here blocks.
 */


#include "ngx_http_credit_module.h"

#include <ngx_sha1.h>


#define NGX_HTTP_CREDIT_CAS_TRIES   100
#define NGX_HTTP_CREDIT_OWED_MAX    100000
#define NGX_HTTP_CREDIT_VALUE_LEN   (2 * NGX_INT64_LEN + 2)

/* the key queues with an op in flight or waiting: a hash table */
#define NGX_HTTP_CREDIT_FLIGHTS     1024

/*
 * Freed ops, key queues and item arrays kept for reuse, at most.  None
 * under AddressSanitizer, so that it sees every free, unless asked for:
 * make check-mem runs the suite both ways.
 */
#if defined(__SANITIZE_ADDRESS__) && !defined(NGX_HTTP_CREDIT_ASAN_KEEP)
#define NGX_HTTP_CREDIT_KEEP        0
#else
#define NGX_HTTP_CREDIT_KEEP        256
#endif


/* the queue of one key in this worker */
typedef struct {
    ngx_queue_t                  link;        /* in its bucket, or free */
    uint32_t                     hash;
    size_t                       len;
    ngx_queue_t                  pending;     /* ngx_http_credit_wait_t */
    ngx_uint_t                   busy;        /* an op is in flight */
    u_char                       key[NGX_HTTP_CREDIT_KEY_MAX + 1];
} ngx_http_credit_flight_t;


/* one charge of a batch */

typedef struct {
    int64_t                      cost;
    ngx_uint_t                   rc;
    int64_t                      plan_charged;
    int64_t                      pack_charged;
    int64_t                      remaining;
} ngx_http_credit_item_t;


/* the items of one batch, max_batch of them */

typedef struct ngx_http_credit_items_s  ngx_http_credit_items_t;

struct ngx_http_credit_items_s {
    ngx_http_credit_items_t     *next;        /* while free */
    ngx_http_credit_item_t       item[1];
};


/*
 * The store of a worker.  A charge used to cost three malloc()s and
 * free()s (the op, its items, its key's queue) and an rbtree insert and
 * delete; under load they were a visible part of the workers' time, so
 * the key queues live in a hash table and all three are reused.
 */

struct ngx_http_credit_store_s {
    ngx_http_credit_mc_t        *mc;
    ngx_http_credit_cache_t     *cache;       /* NULL: cache=off */
    ngx_queue_t                 *flights;     /* NGX_HTTP_CREDIT_FLIGHTS */
    ngx_queue_t                  free_flights;
    ngx_uint_t                   nfree_flights;
    ngx_http_credit_items_t     *free_items;
    ngx_uint_t                   nfree_items;
    ngx_uint_t                   max_batch;
    ngx_queue_t                  owed;        /* refunds to try again */
    ngx_uint_t                   nowed;
    ngx_uint_t                   owed_tries;  /* a second apart */
    ngx_event_t                  owed_ev;
    ngx_msec_t                   exiting_since;
    ngx_log_t                   *log;
    unsigned                     exiting:1;   /* seen shutting down */
};


/* freed ops of this worker, linked through op->data */
static ngx_http_credit_op_t  *ngx_http_credit_free_ops;
static ngx_uint_t             ngx_http_credit_nfree_ops;


static ngx_int_t ngx_http_credit_op_enqueue(ngx_http_credit_store_t *store,
    ngx_http_credit_op_t *op);
static ngx_int_t ngx_http_credit_submit(ngx_http_credit_store_t *store,
    ngx_str_t *key, ngx_http_credit_wait_t *w, ngx_log_t *log);
static ngx_int_t ngx_http_credit_next(ngx_http_credit_store_t *store,
    ngx_http_credit_flight_t *fl, ngx_http_credit_wait_t **failed);
static void ngx_http_credit_fail(ngx_http_credit_wait_t *w);
static void ngx_http_credit_flight_release(ngx_http_credit_store_t *store,
    ngx_http_credit_flight_t *fl);
static ngx_http_credit_item_t *ngx_http_credit_items_alloc(
    ngx_http_credit_store_t *store);
static void ngx_http_credit_items_free(ngx_http_credit_store_t *store,
    ngx_http_credit_item_t *items);
static ngx_int_t ngx_http_credit_op_start(ngx_http_credit_store_t *store,
    ngx_http_credit_op_t *op);
static void ngx_http_credit_op_finish(ngx_http_credit_op_t *op,
    ngx_uint_t rc);
static void ngx_http_credit_charge_done(ngx_http_credit_op_t *op);
static ngx_int_t ngx_http_credit_compute(ngx_http_credit_op_t *op);
static ngx_int_t ngx_http_credit_write(ngx_http_credit_op_t *op);
static ngx_uint_t ngx_http_credit_decide(ngx_http_credit_op_t *op);
static void ngx_http_credit_remember(ngx_http_credit_op_t *op, uint64_t cas);
static void ngx_http_credit_forget(ngx_http_credit_op_t *op, uint64_t cas);
static ngx_int_t ngx_http_credit_balance(ngx_str_t *value, int64_t *plan,
    int64_t *pack);
static void ngx_http_credit_op_amounts(ngx_http_credit_op_t *op,
    int64_t *plan, int64_t *pack);
static char *ngx_http_credit_op_what(ngx_http_credit_op_t *op);
static void ngx_http_credit_ghost_reply(ngx_http_credit_op_t *g,
    ngx_http_credit_reply_t *reply);
static void ngx_http_credit_owed_queue(ngx_http_credit_store_t *store,
    ngx_http_credit_op_t *op);
static void ngx_http_credit_owed_retry(ngx_event_t *ev);
static ngx_uint_t ngx_http_credit_owed_give_up(ngx_http_credit_store_t *store);
static void ngx_http_credit_owed_drop(ngx_http_credit_store_t *store);
static void ngx_http_credit_owed_lost(ngx_http_credit_store_t *store,
    ngx_http_credit_op_t *op);
static void ngx_http_credit_owed_done(ngx_http_credit_op_t *op);


ngx_int_t
ngx_http_credit_store_init(ngx_cycle_t *cycle,
    ngx_http_credit_main_conf_t *cmcf)
{
    ngx_uint_t                i;
    ngx_http_credit_store_t  *store;

    store = ngx_pcalloc(cycle->pool, sizeof(ngx_http_credit_store_t));
    if (store == NULL) {
        return NGX_ERROR;
    }

    store->mc = ngx_http_credit_mc_create(cycle, cmcf);
    if (store->mc == NULL) {
        return NGX_ERROR;
    }

    store->max_batch = cmcf->max_batch;
    store->owed_tries = cmcf->refund_retry;
    store->log = cycle->log;
    store->cache = cmcf->cache_zone ? cmcf->cache_zone->data : NULL;

    store->flights = ngx_palloc(cycle->pool,
                                NGX_HTTP_CREDIT_FLIGHTS * sizeof(ngx_queue_t));
    if (store->flights == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < NGX_HTTP_CREDIT_FLIGHTS; i++) {
        ngx_queue_init(&store->flights[i]);
    }

    ngx_queue_init(&store->free_flights);

    /*
     * The timer of owed refunds is not cancelable: a worker that is
     * shutting down (a reload) waits for them, as it does for requests.
     */

    ngx_queue_init(&store->owed);
    store->owed_ev.handler = ngx_http_credit_owed_retry;
    store->owed_ev.data = store;
    store->owed_ev.log = cycle->log;

    cmcf->store = store;

    return NGX_OK;
}


void
ngx_http_credit_store_exit(ngx_http_credit_main_conf_t *cmcf)
{
    ngx_queue_t              *q;
    ngx_http_credit_op_t     *op;
    ngx_http_credit_items_t  *items;
    ngx_http_credit_store_t  *store;

    store = cmcf->store;

    ngx_http_credit_mc_destroy(store->mc);

    if (store->owed_ev.timer_set) {
        ngx_del_timer(&store->owed_ev);
    }

    ngx_http_credit_owed_drop(store);

    /* what was kept for reuse */

    while (!ngx_queue_empty(&store->free_flights)) {
        q = ngx_queue_head(&store->free_flights);
        ngx_queue_remove(q);
        ngx_free(ngx_queue_data(q, ngx_http_credit_flight_t, link));
    }

    while (store->free_items) {
        items = store->free_items;
        store->free_items = items->next;
        ngx_free(items);
    }

    while (ngx_http_credit_free_ops) {
        op = ngx_http_credit_free_ops;
        ngx_http_credit_free_ops = op->data;
        ngx_free(op);
    }

    ngx_http_credit_nfree_ops = 0;

    cmcf->store = NULL;
}


/*
 * The memcached key of an account: the prefix, then the id with every
 * byte outside [A-Za-z0-9._~:@!$'()*+,;=/-] as %XX, which is injective and
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

    static uint32_t  escape[] = {
        0xffffffff, /* 1111 1111 1111 1111  1111 1111 1111 1111 */

                    /* ?>=< ;:98 7654 3210  /.-, +*)( '&%$ #"!  */
        0xd000006d, /* 1101 0000 0000 0000  0000 0000 0110 1101 */

                    /* _^]\ [ZYX WVUT SRQP  ONML KJIH GFED CBA@ */
        0x78000000, /* 0111 1000 0000 0000  0000 0000 0000 0000 */

                    /*  ~}| {zyx wvut srqp  onml kjih gfed cba` */
        0xb8000001, /* 1011 1000 0000 0000  0000 0000 0000 0001 */

        0xffffffff, /* 1111 1111 1111 1111  1111 1111 1111 1111 */
        0xffffffff, /* 1111 1111 1111 1111  1111 1111 1111 1111 */
        0xffffffff, /* 1111 1111 1111 1111  1111 1111 1111 1111 */
        0xffffffff  /* 1111 1111 1111 1111  1111 1111 1111 1111 */
    };

    len = prefix->len;

    for (i = 0; i < account->len; i++) {
        c = account->data[i];
        len += (escape[c >> 5] & (1U << (c & 0x1f))) ? 3 : 1;
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

            if (escape[c >> 5] & (1U << (c & 0x1f))) {
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


/* the balance cache's entry of a key that is about to be charged */

void
ngx_http_credit_prefetch(ngx_http_request_t *r, ngx_str_t *key)
{
    ngx_http_credit_main_conf_t  *cmcf;

    cmcf = ngx_http_get_module_main_conf(r, ngx_http_credit_module);

    if (cmcf->store && cmcf->store->cache) {
        ngx_http_credit_cache_prefetch(cmcf->store->cache, key->data,
                                       key->len);
    }
}


/*
 * Every operation on a key goes through the key's queue in this worker:
 * one operation per key is in flight at a time, in arrival order, so a
 * worker never races itself (no cas conflicts within a worker) and a read
 * sees the refunds and grants queued before it.  Consecutive charges in
 * the queue are decided together as one batch.
 */

ngx_int_t
ngx_http_credit_charge(ngx_http_request_t *r, ngx_http_credit_rec_t *rec)
{
    ngx_http_credit_main_conf_t  *cmcf;

    cmcf = ngx_http_get_module_main_conf(r, ngx_http_credit_module);

    if (cmcf->store == NULL) {
        return NGX_ERROR;
    }

    rec->next = NULL;
    rec->wait.rec = rec;
    rec->wait.op = NULL;

    if (ngx_http_credit_submit(cmcf->store, &rec->key, &rec->wait,
                               r->connection->log)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    return NGX_AGAIN;
}


/* NGX_OK: op->done() will be called; NGX_ERROR: not queued, free it */

ngx_int_t
ngx_http_credit_op_submit(ngx_http_credit_main_conf_t *cmcf,
    ngx_http_credit_op_t *op)
{
    if (cmcf->store == NULL) {
        return NGX_ERROR;
    }

    return ngx_http_credit_op_enqueue(cmcf->store, op);
}


static ngx_int_t
ngx_http_credit_op_enqueue(ngx_http_credit_store_t *store,
    ngx_http_credit_op_t *op)
{
    ngx_str_t  key;

    op->store = store;
    op->wait.rec = NULL;
    op->wait.op = op;
    op->err[0] = '\0';

    key.data = op->key;
    key.len = op->key_len;

    return ngx_http_credit_submit(store, &key, &op->wait, op->log);
}


static ngx_int_t
ngx_http_credit_submit(ngx_http_credit_store_t *store, ngx_str_t *key,
    ngx_http_credit_wait_t *w, ngx_log_t *log)
{
    uint32_t                   hash;
    ngx_queue_t               *bucket, *q;
    ngx_http_credit_wait_t    *failed;
    ngx_http_credit_flight_t  *fl;

    hash = ngx_crc32_short(key->data, key->len);
    bucket = &store->flights[hash % NGX_HTTP_CREDIT_FLIGHTS];

    for (q = ngx_queue_head(bucket);
         q != ngx_queue_sentinel(bucket);
         q = ngx_queue_next(q))
    {
        fl = ngx_queue_data(q, ngx_http_credit_flight_t, link);

        if (fl->hash == hash && fl->len == key->len
            && ngx_memcmp(fl->key, key->data, key->len) == 0)
        {
            goto found;
        }
    }

    if (!ngx_queue_empty(&store->free_flights)) {
        q = ngx_queue_head(&store->free_flights);
        ngx_queue_remove(q);
        store->nfree_flights--;
        fl = ngx_queue_data(q, ngx_http_credit_flight_t, link);

    } else {
        fl = ngx_alloc(sizeof(ngx_http_credit_flight_t), log);
        if (fl == NULL) {
            return NGX_ERROR;
        }
    }

    ngx_memcpy(fl->key, key->data, key->len);
    fl->hash = hash;
    fl->len = key->len;
    fl->busy = 0;
    ngx_queue_init(&fl->pending);

    ngx_queue_insert_head(bucket, &fl->link);

found:

    ngx_queue_insert_tail(&fl->pending, &w->queue);

    if (fl->busy) {
        return NGX_OK;
    }

    if (ngx_http_credit_next(store, fl, &failed) == NGX_ERROR) {
        ngx_http_credit_flight_release(store, fl);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * Posts the head of the queue (a batch of charges, or one op).
 * NGX_OK: sent; NGX_DONE: nothing waits; NGX_ERROR: it cannot be sent
 * (server down or overloaded), and *failed is the taken-out head for the
 * caller to fail.
 */

static ngx_int_t
ngx_http_credit_next(ngx_http_credit_store_t *store,
    ngx_http_credit_flight_t *fl, ngx_http_credit_wait_t **failed)
{
    ngx_str_t                 key;
    ngx_uint_t                n;
    ngx_queue_t              *q;
    ngx_http_credit_op_t     *op;
    ngx_http_credit_rec_t    *rec, *last;
    ngx_http_credit_wait_t   *w;
    ngx_http_credit_item_t   *items;

    if (ngx_queue_empty(&fl->pending)) {
        return NGX_DONE;
    }

    q = ngx_queue_head(&fl->pending);
    w = ngx_queue_data(q, ngx_http_credit_wait_t, queue);
    *failed = w;

    if (w->op) {
        ngx_queue_remove(q);
        op = w->op;
        goto post;
    }

    /* consecutive charges make one batch */

    n = 0;

    for (q = ngx_queue_head(&fl->pending);
         q != ngx_queue_sentinel(&fl->pending) && n < store->max_batch;
         q = ngx_queue_next(q))
    {
        w = ngx_queue_data(q, ngx_http_credit_wait_t, queue);

        if (w->rec == NULL) {
            break;
        }

        n++;
    }

    w = *failed;
    key.data = fl->key;
    key.len = fl->len;

    op = ngx_http_credit_op_create(store->log, NGX_HTTP_CREDIT_OP_CHARGE,
                                   &key);
    items = ngx_http_credit_items_alloc(store);

    if (op == NULL || items == NULL) {
        if (op) {
            ngx_http_credit_op_free(op);
        }

        if (items) {
            ngx_http_credit_items_free(store, items);
        }

        ngx_queue_remove(&w->queue);
        w->rec->next = NULL;
        return NGX_ERROR;
    }

    op->data = items;
    op->done = ngx_http_credit_charge_done;
    op->nbatch = n;
    op->store = store;

    last = NULL;

    for (n = 0; n < op->nbatch; n++) {
        q = ngx_queue_head(&fl->pending);
        ngx_queue_remove(q);

        w = ngx_queue_data(q, ngx_http_credit_wait_t, queue);
        rec = w->rec;
        rec->next = NULL;

        if (last) {
            last->next = rec;

        } else {
            op->batch = rec;
        }

        last = rec;

        items[n].cost = rec->cost;
        items[n].rc = NGX_HTTP_CREDIT_RC_FAIL;
    }

post:

    op->flight = fl;

    if (ngx_http_credit_op_start(store, op) != NGX_OK) {

        ngx_log_error(NGX_LOG_INFO, store->log, 0,
                      "credit: memcached operation on \"%s\" not sent: %s",
                      op->key, op->err);

        if (op->type == NGX_HTTP_CREDIT_OP_CHARGE) {
            /* the batch's recs are failed through the first one */
            *failed = &op->batch->wait;
            ngx_http_credit_items_free(store, op->data);
            ngx_http_credit_op_free(op);
        }

        return NGX_ERROR;
    }

    fl->busy = 1;

    return NGX_OK;
}


/* an op could not be sent: give its waiters a failure */

static void
ngx_http_credit_fail(ngx_http_credit_wait_t *w)
{
    ngx_http_credit_op_t   *op;
    ngx_http_credit_rec_t  *rec, *next;

    if (w->rec) {

        /* a charge batch: the recs, and the op made for them, if any */

        for (rec = w->rec; rec; rec = next) {
            next = rec->next;
            rec->next = NULL;
            ngx_http_credit_charged(rec, NGX_HTTP_CREDIT_RC_FAIL);
        }

        return;
    }

    op = w->op;
    op->rc = NGX_HTTP_CREDIT_RC_FAIL;

    if (op->err[0] == '\0') {
        ngx_cpystrn((u_char *) op->err, (u_char *) "memcached unavailable",
                    sizeof(op->err));
    }

    op->done(op);
}


static void
ngx_http_credit_flight_release(ngx_http_credit_store_t *store,
    ngx_http_credit_flight_t *fl)
{
    if (!fl->busy && ngx_queue_empty(&fl->pending)) {
        ngx_queue_remove(&fl->link);

#if (NGX_HTTP_CREDIT_KEEP)
        if (store->nfree_flights < NGX_HTTP_CREDIT_KEEP) {
            ngx_queue_insert_head(&store->free_flights, &fl->link);
            store->nfree_flights++;
            return;
        }
#endif

        ngx_free(fl);
    }
}


/* an array of max_batch items */

static ngx_http_credit_item_t *
ngx_http_credit_items_alloc(ngx_http_credit_store_t *store)
{
    ngx_http_credit_items_t  *items;

    items = store->free_items;

    if (items) {
        store->free_items = items->next;
        store->nfree_items--;
        return items->item;
    }

    items = ngx_alloc(offsetof(ngx_http_credit_items_t, item)
                      + store->max_batch * sizeof(ngx_http_credit_item_t),
                      store->log);

    return items ? items->item : NULL;
}


static void
ngx_http_credit_items_free(ngx_http_credit_store_t *store,
    ngx_http_credit_item_t *item)
{
    ngx_http_credit_items_t  *items;

    items = (ngx_http_credit_items_t *)
                ((u_char *) item - offsetof(ngx_http_credit_items_t, item));

#if (NGX_HTTP_CREDIT_KEEP)
    if (store->nfree_items < NGX_HTTP_CREDIT_KEEP) {
        items->next = store->free_items;
        store->free_items = items;
        store->nfree_items++;
        return;
    }
#endif

    ngx_free(items);
}


static void
ngx_http_credit_charge_done(ngx_http_credit_op_t *op)
{
    ngx_uint_t               i;
    ngx_http_credit_rec_t   *rec, *next;
    ngx_http_credit_item_t  *items;

    items = op->data;

    if (op->err[0]) {
        ngx_log_error(NGX_LOG_INFO, op->log, 0,
                      "credit: memcached charge of \"%s\" failed: %s",
                      op->key, op->err);
    }

    rec = op->batch;

    for (i = 0; i < op->nbatch; i++) {
        next = rec->next;
        rec->next = NULL;

        if (op->rc == NGX_HTTP_CREDIT_RC_FAIL) {
            items[i].rc = NGX_HTTP_CREDIT_RC_FAIL;
            rec->unmoved = op->unmoved;
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

    ngx_http_credit_items_free(op->store, items);
    ngx_http_credit_op_free(op);
}


ngx_http_credit_op_t *
ngx_http_credit_op_create(ngx_log_t *log, ngx_uint_t type, ngx_str_t *key)
{
    ngx_http_credit_op_t  *op;

    if (key->len > NGX_HTTP_CREDIT_KEY_MAX) {
        return NULL;
    }

    op = ngx_http_credit_free_ops;

    if (op) {
        ngx_http_credit_free_ops = op->data;
        ngx_http_credit_nfree_ops--;

    } else {
        op = ngx_alloc(sizeof(ngx_http_credit_op_t), log);
        if (op == NULL) {
            return NULL;
        }
    }

    ngx_memzero(op, sizeof(ngx_http_credit_op_t));

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
#if (NGX_HTTP_CREDIT_KEEP)
    if (ngx_http_credit_nfree_ops < NGX_HTTP_CREDIT_KEEP) {
        op->data = ngx_http_credit_free_ops;
        ngx_http_credit_free_ops = op;
        ngx_http_credit_nfree_ops++;
        return;
    }
#endif

    ngx_free(op);
}


/* the first step of every operation: read the balance */

static ngx_int_t
ngx_http_credit_op_start(ngx_http_credit_store_t *store,
    ngx_http_credit_op_t *op)
{
    uint64_t    instance;
    ngx_uint_t  refused;

    /* the op may outlive its request: log to the worker's log */

    op->store = store;
    op->log = store->log;
    op->retries = 0;

    if (store->cache == NULL || op->type == NGX_HTTP_CREDIT_OP_GET) {
        return ngx_http_credit_mc_gets(store->mc, op);
    }

    /*
     * The fast path: decide from the cached balance and write with its
     * token at once.  Only when that charges everything in the batch: a
     * refusal is always decided on a fresh read.
     */

    instance = ngx_http_credit_mc_instance(store->mc, op);

    if (instance == 0
        || ngx_http_credit_cache_get(store->cache, op->key, op->key_len,
                                     instance, &op->plan, &op->pack, &op->cas)
           != NGX_OK)
    {
        return ngx_http_credit_mc_gets(store->mc, op);
    }

    op->exists = 1;
    refused = 0;

    if (op->type == NGX_HTTP_CREDIT_OP_CHARGE) {
        refused = ngx_http_credit_decide(op);
    }

    if (ngx_http_credit_compute(op) != NGX_OK || refused) {
        return ngx_http_credit_mc_gets(store->mc, op);
    }

    return ngx_http_credit_write(op);
}


/* sends the new balance, with the token read (or an add for a new item) */

static ngx_int_t
ngx_http_credit_write(ngx_http_credit_op_t *op)
{
    u_char  *p;
    u_char   value[NGX_HTTP_CREDIT_VALUE_LEN];

    p = ngx_sprintf(value, "%L %L", op->plan, op->pack);

    return ngx_http_credit_mc_store(op->store->mc, op, value, p - value);
}


/*
 * The state machine of an operation, one memcached reply at a time:
 * gets -> decide -> cas (or add for a new item) -> done, or, when another
 * writer came first, gets again.
 */

void
ngx_http_credit_op_reply(ngx_http_credit_op_t *op,
    ngx_http_credit_reply_t *reply)
{
    ngx_int_t  rc;

    if (op->ghost) {
        ngx_http_credit_ghost_reply(op, reply);
        return;
    }

    switch (reply->type) {

    case NGX_HTTP_CREDIT_REPLY_ERROR:
        ngx_cpystrn((u_char *) op->err, (u_char *) reply->err,
                    sizeof(op->err));
        ngx_http_credit_op_finish(op, NGX_HTTP_CREDIT_RC_FAIL);
        return;

    case NGX_HTTP_CREDIT_REPLY_STORED:
        ngx_http_credit_remember(op, reply->cas);
        ngx_http_credit_op_finish(op, NGX_HTTP_CREDIT_RC_OK);
        return;

    case NGX_HTTP_CREDIT_REPLY_CONFLICT:

        /* somebody wrote since the token was read: read again */

        ngx_http_credit_forget(op, op->cas);

        if (++op->retries == NGX_HTTP_CREDIT_CAS_TRIES) {
            ngx_cpystrn((u_char *) op->err,
                        (u_char *) "too many cas conflicts", sizeof(op->err));
            ngx_http_credit_op_finish(op, NGX_HTTP_CREDIT_RC_FAIL);
            return;
        }

        if (ngx_http_credit_mc_gets(op->store->mc, op) != NGX_OK) {
            ngx_http_credit_op_finish(op, NGX_HTTP_CREDIT_RC_FAIL);
        }

        return;

    case NGX_HTTP_CREDIT_REPLY_MISS:
        ngx_http_credit_forget(op, 0);

        if (op->moving) {
            /* not empty: its balance is still on its previous server */
            ngx_cpystrn((u_char *) op->err,
                        (u_char *) "its balance is not on its new server "
                        "yet (credit_memcached previous=)", sizeof(op->err));
            op->unmoved = 1;
            ngx_http_credit_op_finish(op, NGX_HTTP_CREDIT_RC_FAIL);
            return;
        }

        op->exists = 0;
        op->plan = 0;
        op->pack = 0;
        break;

    default: /* NGX_HTTP_CREDIT_REPLY_VALUE */
        if (ngx_http_credit_balance(&reply->value, &op->plan, &op->pack)
            != NGX_OK)
        {
            ngx_log_error(NGX_LOG_ERR, op->log, 0,
                          "credit: the memcached item \"%s\" is not a "
                          "balance (\"PLAN PACK\"), its account fails as "
                          "credit_fail says until it is set again",
                          op->key);

            ngx_cpystrn((u_char *) op->err,
                        (u_char *) "malformed balance item", sizeof(op->err));
            op->malformed = 1;
            ngx_http_credit_op_finish(op, NGX_HTTP_CREDIT_RC_FAIL);
            return;
        }

        op->exists = 1;
        op->cas = reply->cas;
        ngx_http_credit_remember(op, reply->cas);
        break;
    }

    /* the balance is read: decide */

    if (op->type == NGX_HTTP_CREDIT_OP_CHARGE) {
        (void) ngx_http_credit_decide(op);
    }

    rc = ngx_http_credit_compute(op);

    if (rc == NGX_DONE) {
        ngx_http_credit_op_finish(op, NGX_HTTP_CREDIT_RC_OK);
        return;
    }

    if (rc == NGX_DECLINED) {
        ngx_http_credit_op_finish(op, NGX_HTTP_CREDIT_RC_SHORT);
        return;
    }

    if (ngx_http_credit_write(op) != NGX_OK) {
        ngx_http_credit_op_finish(op, NGX_HTTP_CREDIT_RC_FAIL);
    }
}


/*
 * The new balance of an operation from the one read (op->plan, op->pack;
 * a charge batch has been decided already).  NGX_OK: write it; NGX_DONE:
 * nothing changes; NGX_DECLINED: it would pass the largest balance.
 */

static ngx_int_t
ngx_http_credit_compute(ngx_http_credit_op_t *op)
{
    ngx_uint_t               i;
    ngx_http_credit_item_t  *it;

    switch (op->type) {

    case NGX_HTTP_CREDIT_OP_GET:
        return NGX_DONE;

    case NGX_HTTP_CREDIT_OP_CHARGE:
        it = op->data;

        for (i = 0; i < op->nbatch; i++) {
            if (it[i].rc == NGX_HTTP_CREDIT_RC_OK && it[i].cost) {
                return NGX_OK;
            }
        }

        return NGX_DONE;        /* nothing charged: nothing to write */

    case NGX_HTTP_CREDIT_OP_SET_PLAN:
        op->plan = op->plan_amount;
        return NGX_OK;

    default: /* NGX_HTTP_CREDIT_OP_REFUND, NGX_HTTP_CREDIT_OP_ADD_PACK */
        if (op->plan + op->plan_amount > NGX_HTTP_CREDIT_MAX_COST
            || op->pack + op->pack_amount > NGX_HTTP_CREDIT_MAX_COST)
        {
            ngx_cpystrn((u_char *) op->err,
                        (u_char *) "balance would be too large",
                        sizeof(op->err));
            return NGX_DECLINED;
        }

        op->plan += op->plan_amount;
        op->pack += op->pack_amount;
        return NGX_OK;
    }
}


/* tells the cache what memcached now holds for the key */

static void
ngx_http_credit_remember(ngx_http_credit_op_t *op, uint64_t cas)
{
    if (op->store->cache == NULL || op->instance == 0 || cas == 0) {
        return;
    }

    ngx_http_credit_cache_set(op->store->cache, op->key, op->key_len,
                              op->instance, op->plan, op->pack, cas);
}


static void
ngx_http_credit_forget(ngx_http_credit_op_t *op, uint64_t cas)
{
    if (op->store->cache) {
        ngx_http_credit_cache_forget(op->store->cache, op->key, op->key_len,
                                     cas);
    }
}


static ngx_int_t
ngx_http_credit_balance(ngx_str_t *value, int64_t *plan, int64_t *pack)
{
    u_char  *sp, *last;

    last = value->data + value->len;
    sp = ngx_strlchr(value->data, last, ' ');

    if (sp == NULL) {
        return NGX_ERROR;
    }

    *plan = ngx_atoof(value->data, sp - value->data);
    *pack = ngx_atoof(sp + 1, last - sp - 1);

    /* the module never writes more to a bucket: sums cannot overflow */

    if (*plan == NGX_ERROR || *pack == NGX_ERROR
        || *plan > NGX_HTTP_CREDIT_MAX_COST
        || *pack > NGX_HTTP_CREDIT_MAX_COST)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* an operation is over: start the key's next one, then report this one */

static void
ngx_http_credit_op_finish(ngx_http_credit_op_t *op, ngx_uint_t rc)
{
    ngx_http_credit_wait_t    *failed;
    ngx_http_credit_store_t   *store;
    ngx_http_credit_flight_t  *fl;

    store = op->store;
    fl = op->flight;

    op->rc = rc;

    fl->busy = 0;

    while (ngx_http_credit_next(store, fl, &failed) == NGX_ERROR) {
        ngx_http_credit_fail(failed);
    }

    op->done(op);

    ngx_http_credit_flight_release(store, fl);
}


/*
 * Decides a batch of charges against op->plan and op->pack, in order:
 * plan first, then pack; a charge that does not fit takes nothing.
 */

static ngx_uint_t
ngx_http_credit_decide(ngx_http_credit_op_t *op)
{
    int64_t                  cost, from_plan;
    ngx_uint_t               i, refused;
    ngx_http_credit_item_t  *it;

    it = op->data;
    refused = 0;

    for (i = 0; i < op->nbatch; i++) {
        cost = it[i].cost;

        if (op->plan + op->pack < cost) {
            it[i].rc = NGX_HTTP_CREDIT_RC_SHORT;
            it[i].plan_charged = 0;
            it[i].pack_charged = 0;
            it[i].remaining = op->plan + op->pack;
            refused++;
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

    return refused;
}


/*
 * Writes whose reply did not come within the timeout.  The request is
 * answered at once (503, or passed with credit_fail open) as not charged,
 * but memcached may still apply the write: a stalled memcached runs what
 * is in its socket buffer when it wakes up.  So the connection is kept,
 * and a ghost of the op takes its place in the reply queue: it knows what
 * the write would change, and when the late reply comes it settles the
 * books.  A charge that landed is given back, a refund that did not land
 * is sent again.  A write's token is gone once anything else is written,
 * so one that did not land never will.
 */

ngx_http_credit_op_t *
ngx_http_credit_op_ghost(ngx_http_credit_op_t *op)
{
    ngx_str_t              key;
    ngx_http_credit_op_t  *g;

    key.data = op->key;
    key.len = op->key_len;

    g = ngx_http_credit_op_create(op->log, op->type, &key);
    if (g == NULL) {
        return NULL;
    }

    g->ghost = 1;
    g->expect = op->expect;
    g->cmd_len = op->cmd_len;
    g->store = op->store;
    g->server = op->server;
    g->instance = op->instance;
    g->cas = op->cas;
    g->log = op->log;

    if (op->expect != NGX_HTTP_CREDIT_EXPECT_STORED) {
        return g;                       /* a read: nothing to settle */
    }

    op->in_doubt = 1;

    ngx_http_credit_op_amounts(op, &g->plan_amount, &g->pack_amount);

    return g;
}


/*
 * A write whose connection failed after the write was sent and before its
 * reply came (a reset, a reply out of step): memcached may or may not have
 * applied it, and nobody can tell any more.  Its requests are answered as
 * not charged, a refund is not sent again (it may have landed), and the
 * write is logged for the billing system to settle.
 */

void
ngx_http_credit_op_lost(ngx_http_credit_op_t *op, const char *err)
{
    int64_t  plan, pack;

    op->in_doubt = 1;

    ngx_http_credit_op_amounts(op, &plan, &pack);

    ngx_log_error(NGX_LOG_ALERT, op->log, 0,
                  "credit: a %s of plan %L, pack %L on \"%s\" has an unknown "
                  "outcome: %s", ngx_http_credit_op_what(op), plan, pack,
                  op->key, err);
}


/* what a write changes: the charges of a batch that fit, or the amounts */

static void
ngx_http_credit_op_amounts(ngx_http_credit_op_t *op, int64_t *plan,
    int64_t *pack)
{
    ngx_uint_t               i;
    ngx_http_credit_item_t  *it;

    if (op->type != NGX_HTTP_CREDIT_OP_CHARGE) {
        *plan = op->plan_amount;
        *pack = op->pack_amount;
        return;
    }

    *plan = 0;
    *pack = 0;

    it = op->data;

    for (i = 0; i < op->nbatch; i++) {
        if (it[i].rc == NGX_HTTP_CREDIT_RC_OK) {
            *plan += it[i].plan_charged;
            *pack += it[i].pack_charged;
        }
    }
}


static char *
ngx_http_credit_op_what(ngx_http_credit_op_t *op)
{
    switch (op->type) {
    case NGX_HTTP_CREDIT_OP_CHARGE:
        return "charge";
    case NGX_HTTP_CREDIT_OP_REFUND:
        return "refund";
    case NGX_HTTP_CREDIT_OP_SET_PLAN:
        return "grant (plan set)";
    default: /* NGX_HTTP_CREDIT_OP_ADD_PACK */
        return "grant (pack added)";
    }
}


static void
ngx_http_credit_ghost_reply(ngx_http_credit_op_t *g,
    ngx_http_credit_reply_t *reply)
{
    char        *what, *outcome;
    ngx_str_t    key;
    ngx_uint_t   level, owe;

    if (g->expect != NGX_HTTP_CREDIT_EXPECT_STORED) {
        ngx_http_credit_op_free(g);
        return;
    }

    what = ngx_http_credit_op_what(g);
    owe = 0;

    switch (reply->type) {

    case NGX_HTTP_CREDIT_REPLY_STORED:

        /* it landed: a charge is given back; the cached token is stale */

        ngx_http_credit_forget(g, g->cas);

        if (g->type == NGX_HTTP_CREDIT_OP_CHARGE) {
            level = NGX_LOG_WARN;
            outcome = "reached memcached late; giving it back";
            owe = 1;

        } else {
            /* a grant's caller was told 503: it must be seen */
            level = (g->type == NGX_HTTP_CREDIT_OP_REFUND) ? NGX_LOG_NOTICE
                                                          : NGX_LOG_WARN;
            outcome = "reached memcached late and is applied";
        }

        break;

    case NGX_HTTP_CREDIT_REPLY_CONFLICT:

        /* it did not land, and never will: a refund is sent again */

        if (g->type == NGX_HTTP_CREDIT_OP_CHARGE) {
            level = NGX_LOG_INFO;
            outcome = "did not land: nothing was taken";

        } else if (g->type == NGX_HTTP_CREDIT_OP_REFUND) {
            level = NGX_LOG_NOTICE;
            outcome = "did not land; trying again";
            owe = 1;

        } else {
            level = NGX_LOG_WARN;
            outcome = "did not land: it is not applied";
        }

        break;

    default:
        level = NGX_LOG_ALERT;
        outcome = "has an unknown outcome";
    }

    ngx_log_error(level, g->log, 0,
                  "credit: a timed-out %s of plan %L, pack %L on \"%s\" %s%s%s",
                  what, g->plan_amount, g->pack_amount, g->key, outcome,
                  reply->err ? ": " : "", reply->err ? reply->err : "");

    if (owe) {
        key.data = g->key;
        key.len = g->key_len;

        ngx_http_credit_owe(g->store, &key, g->plan_amount, g->pack_amount,
                            g->log);
    }

    ngx_http_credit_op_free(g);
}


/*
 * A refund that must reach memcached: refunds of upstream failures, and
 * charges that landed after their timeout.  One that cannot be sent now
 * (server down, too many operations pending, or its read failed) is tried
 * again every second, for refund_retry (credit_memcached); a worker
 * that is shutting down (a reload) waits for it, as for a request.
 */

void
ngx_http_credit_owe(ngx_http_credit_store_t *store, ngx_str_t *key,
    int64_t plan, int64_t pack, ngx_log_t *log)
{
    ngx_http_credit_op_t  *op;

    op = store ? ngx_http_credit_op_create(log, NGX_HTTP_CREDIT_OP_REFUND,
                                           key)
               : NULL;

    if (op == NULL) {
        ngx_log_error(NGX_LOG_ALERT, log, 0,
                      "credit: refund of plan %L, pack %L to key \"%V\" is "
                      "lost: %s", plan, pack, key,
                      store ? "out of memory" : "no memcached");
        return;
    }

    op->log = store->log;          /* it may outlive the request */
    op->plan_amount = plan;
    op->pack_amount = pack;
    op->done = ngx_http_credit_owed_done;

    if (ngx_http_credit_op_enqueue(store, op) != NGX_OK) {
        ngx_http_credit_owed_queue(store, op);
    }
}


static void
ngx_http_credit_owed_queue(ngx_http_credit_store_t *store,
    ngx_http_credit_op_t *op)
{
    if (ngx_http_credit_mc_is_shut(store->mc)) {
        ngx_http_credit_owed_lost(store, op);
        return;
    }

    if (++op->owed > store->owed_tries
        || store->nowed >= NGX_HTTP_CREDIT_OWED_MAX)
    {
        ngx_log_error(NGX_LOG_ALERT, store->log, 0,
                      "credit: refund of plan %L, pack %L to key \"%s\" is "
                      "lost after %ui tries: %s", op->plan_amount,
                      op->pack_amount, op->key, op->owed, op->err);
        ngx_http_credit_op_free(op);
        return;
    }

    ngx_queue_insert_tail(&store->owed, &op->wait.queue);
    store->nowed++;

    if (!store->owed_ev.timer_set) {
        ngx_add_timer(&store->owed_ev, 1000);
    }
}


static void
ngx_http_credit_owed_retry(ngx_event_t *ev)
{
    ngx_queue_t               owed, *q;
    ngx_http_credit_op_t     *op;
    ngx_http_credit_store_t  *store;

    store = ev->data;

    if (ngx_http_credit_owed_give_up(store)) {
        ngx_http_credit_owed_drop(store);
        return;
    }

    /* take the list out first: a refund that fails again goes back in */

    ngx_queue_init(&owed);

    if (!ngx_queue_empty(&store->owed)) {
        ngx_queue_add(&owed, &store->owed);
        ngx_queue_init(&store->owed);
    }

    store->nowed = 0;

    while (!ngx_queue_empty(&owed)) {
        q = ngx_queue_head(&owed);
        ngx_queue_remove(q);
        op = ngx_queue_data(q, ngx_http_credit_op_t, wait.queue);

        if (ngx_http_credit_op_enqueue(store, op) != NGX_OK) {
            ngx_http_credit_owed_queue(store, op);
        }
    }
}


/*
 * A worker shutting down waits for the refunds it owes, as for its
 * requests, but not past worker_shutdown_timeout: then nginx closes the
 * connections (memcached's too, which shuts the client), or, when no
 * connection to memcached is open, this timer finds the time is up (it
 * counts from the first retry that saw the worker exiting, so up to a
 * second late).  The refunds still owed are logged as lost.
 */

static ngx_uint_t
ngx_http_credit_owed_give_up(ngx_http_credit_store_t *store)
{
    ngx_core_conf_t  *ccf;

    if (ngx_exiting && !ngx_http_credit_mc_is_shut(store->mc)) {

        if (!store->exiting) {
            store->exiting = 1;
            store->exiting_since = ngx_current_msec;
        }

        ccf = (ngx_core_conf_t *) ngx_get_conf(ngx_cycle->conf_ctx,
                                               ngx_core_module);

        if (ccf->shutdown_timeout
            && ngx_current_msec - store->exiting_since
               >= ccf->shutdown_timeout)
        {
            ngx_http_credit_mc_shutdown(store->mc);
        }
    }

    return ngx_http_credit_mc_is_shut(store->mc);
}


/* the worker exits: every refund still owed is logged as lost */

static void
ngx_http_credit_owed_drop(ngx_http_credit_store_t *store)
{
    ngx_queue_t           *q;
    ngx_http_credit_op_t  *op;

    while (!ngx_queue_empty(&store->owed)) {
        q = ngx_queue_head(&store->owed);
        ngx_queue_remove(q);
        op = ngx_queue_data(q, ngx_http_credit_op_t, wait.queue);

        ngx_http_credit_owed_lost(store, op);
    }

    store->nowed = 0;
}


static void
ngx_http_credit_owed_lost(ngx_http_credit_store_t *store,
    ngx_http_credit_op_t *op)
{
    ngx_log_error(NGX_LOG_ALERT, store->log, 0,
                  "credit: refund of plan %L, pack %L to key \"%s\" is "
                  "lost: the worker exits before memcached took it",
                  op->plan_amount, op->pack_amount, op->key);

    ngx_http_credit_op_free(op);
}


static void
ngx_http_credit_owed_done(ngx_http_credit_op_t *op)
{
    switch (op->rc) {

    case NGX_HTTP_CREDIT_RC_OK:
        if (op->owed) {
            ngx_log_error(NGX_LOG_NOTICE, op->log, 0,
                          "credit: refund of plan %L, pack %L to key \"%s\" "
                          "done after %ui tries", op->plan_amount,
                          op->pack_amount, op->key, op->owed + 1);
        }

        break;

    case NGX_HTTP_CREDIT_RC_FAIL:
        if (op->in_doubt) {
            break;                      /* its ghost settles it */
        }

        ngx_http_credit_owed_queue(op->store, op);
        return;

    default:
        ngx_log_error(NGX_LOG_ALERT, op->log, 0,
                      "credit: refund of plan %L, pack %L to key \"%s\" "
                      "failed: %s", op->plan_amount, op->pack_amount,
                      op->key, op->err);
    }

    ngx_http_credit_op_free(op);
}
