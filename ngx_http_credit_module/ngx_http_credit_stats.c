
/*
 * ngx_http_credit_module: counters of what metering did, as the ledger
 * ($credit_status) tells it, in a shared zone that all workers add to (it
 * outlives reloads; a start of nginx zeroes it), and credit_stats, the
 * content handler that shows them.
 *
 * Each worker adds to a slot of its own, cache lines apart, so that the
 * workers do not pass the counters' lines between their cores on every
 * request; credit_stats sums the slots.  Slots are by worker number, which
 * an old worker still shutting down after a reload shares with a new
 * one, so the additions stay atomic.
 */


#include "ngx_http_credit_module.h"


#define NGX_HTTP_CREDIT_STATS_SLOTS  64


typedef struct {
    ngx_atomic_t                 requests[NGX_HTTP_CREDIT_ST_ERROR + 1];
    ngx_atomic_t                 charged;     /* credits, refunded or not */
    ngx_atomic_t                 refunded;
    ngx_atomic_t                 mc_failures;
} ngx_http_credit_counters_t;


typedef union {
    ngx_http_credit_counters_t   c;
    u_char                       line[ngx_align(
                                     sizeof(ngx_http_credit_counters_t),
                                     NGX_CPU_CACHE_LINE)];
} ngx_http_credit_stats_slot_t;


typedef struct {
    ngx_http_credit_stats_slot_t  slot[NGX_HTTP_CREDIT_STATS_SLOTS];
} ngx_http_credit_stats_t;


static ngx_int_t ngx_http_credit_stats_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);


/* this worker's slot, of its own configuration's zone, set at its start */
static ngx_http_credit_counters_t  *ngx_http_credit_counters;


/* the zone, once for the configuration, whichever directive asks first */

ngx_int_t
ngx_http_credit_stats_zone(ngx_conf_t *cf)
{
    ngx_str_t                     name = ngx_string("credit_stats");
    ngx_http_credit_main_conf_t  *cmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_credit_module);

    if (cmcf->stats_zone) {
        return NGX_OK;
    }

    cmcf->stats_zone = ngx_shared_memory_add(cf, &name, 8 * ngx_pagesize,
                                             &ngx_http_credit_module);
    if (cmcf->stats_zone == NULL) {
        return NGX_ERROR;
    }

    cmcf->stats_zone->init = ngx_http_credit_stats_init_zone;

    return NGX_OK;
}


/*
 * In each worker: its own configuration's zone, if any.  (A pointer set
 * in the master would survive a reload to a configuration without the
 * zone, pointing at memory unmapped by then.)
 */

void
ngx_http_credit_stats_init_process(ngx_http_credit_main_conf_t *cmcf)
{
    ngx_http_credit_stats_t  *st;

    if (cmcf->stats_zone == NULL) {
        ngx_http_credit_counters = NULL;
        return;
    }

    st = cmcf->stats_zone->data;

    ngx_http_credit_counters =
        &st->slot[ngx_worker % NGX_HTTP_CREDIT_STATS_SLOTS].c;
}


static ngx_int_t
ngx_http_credit_stats_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_slab_pool_t          *shpool;
    ngx_http_credit_stats_t  *st;

    if (data) {

        /* a reload: the counters go on */

        shm_zone->data = data;
        return NGX_OK;
    }

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    st = ngx_slab_calloc(shpool, sizeof(ngx_http_credit_stats_t));
    if (st == NULL) {
        return NGX_ERROR;
    }

    shm_zone->data = st;

    return NGX_OK;
}


/* a metered request, at the log phase, with its final status */

void
ngx_http_credit_stats_count(ngx_http_credit_rec_t *rec)
{
    ngx_http_credit_counters_t  *st;

    st = ngx_http_credit_counters;

    if (st == NULL || rec->status == NGX_HTTP_CREDIT_ST_NONE) {
        return;
    }

    (void) ngx_atomic_fetch_add(&st->requests[rec->status], 1);

    if (rec->charged) {
        (void) ngx_atomic_fetch_add(&st->charged,
                                     (ngx_atomic_int_t) rec->cost);

        if (rec->refunded) {
            (void) ngx_atomic_fetch_add(&st->refunded,
                                         (ngx_atomic_int_t) rec->cost);
        }
    }
}


/* a memcached server failed or timed out: its operations failed */

void
ngx_http_credit_stats_mc_failure(void)
{
    if (ngx_http_credit_counters) {
        (void) ngx_atomic_fetch_add(&ngx_http_credit_counters->mc_failures,
                                    1);
    }
}


ngx_int_t
ngx_http_credit_stats_handler(ngx_http_request_t *r)
{
    u_char                       *body, *p;
    size_t                        len;
    ngx_uint_t                    i, k;
    ngx_http_credit_stats_t      *st;
    ngx_http_credit_counters_t   *c, sum;
    ngx_http_credit_main_conf_t  *cmcf;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return ngx_http_credit_admin_error(r, NGX_HTTP_NOT_ALLOWED,
                                           "method_not_allowed", "use GET");
    }

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* credit_stats made the zone */

    cmcf = ngx_http_get_module_main_conf(r, ngx_http_credit_module);
    st = cmcf->stats_zone->data;

    ngx_memzero(&sum, sizeof(ngx_http_credit_counters_t));

    for (k = 0; k < NGX_HTTP_CREDIT_STATS_SLOTS; k++) {
        c = &st->slot[k].c;

        for (i = 0; i <= NGX_HTTP_CREDIT_ST_ERROR; i++) {
            sum.requests[i] += c->requests[i];
        }

        sum.charged += c->charged;
        sum.refunded += c->refunded;
        sum.mc_failures += c->mc_failures;
    }

    len = sizeof("{\"requests\":{},\"credits\":{\"charged\":,\"refunded\":},"
                 "\"memcached\":{\"failures\":}}\n")
          + 3 * NGX_ATOMIC_T_LEN;

    for (i = 1; i <= NGX_HTTP_CREDIT_ST_ERROR; i++) {
        len += sizeof("\"\":,") + ngx_http_credit_status_names[i].len
               + NGX_ATOMIC_T_LEN;
    }

    body = ngx_pnalloc(r->pool, len);
    if (body == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_cpymem(body, "{\"requests\":{", sizeof("{\"requests\":{") - 1);

    for (i = 1; i <= NGX_HTTP_CREDIT_ST_ERROR; i++) {
        p = ngx_sprintf(p, "%s\"%V\":%uA", (i == 1) ? "" : ",",
                        &ngx_http_credit_status_names[i], sum.requests[i]);
    }

    p = ngx_sprintf(p, "},\"credits\":{\"charged\":%uA,\"refunded\":%uA},"
                    "\"memcached\":{\"failures\":%uA}}\n",
                    sum.charged, sum.refunded, sum.mc_failures);

    return ngx_http_credit_send_json(r, NGX_HTTP_OK, body, p - body);
}
