
/*
 * ngx_http_credit_module: counters of what metering did, as the ledger
 * ($credit_status) tells it, in a shared zone that all workers add to (it
 * outlives reloads; a start of nginx zeroes it), and credit_stats, the
 * content handler that shows them.
 */


#include "ngx_http_credit_module.h"


typedef struct {
    ngx_atomic_t                 requests[NGX_HTTP_CREDIT_ST_ERROR + 1];
    ngx_atomic_t                 charged;     /* credits, refunded or not */
    ngx_atomic_t                 refunded;
    ngx_atomic_t                 mc_failures;
} ngx_http_credit_stats_t;


static ngx_int_t ngx_http_credit_stats_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);


/* the counters of this worker's configuration, set when it starts */
static ngx_http_credit_stats_t  *ngx_http_credit_stats;


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
    ngx_http_credit_stats = cmcf->stats_zone ? cmcf->stats_zone->data : NULL;
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
    ngx_http_credit_stats_t  *st;

    st = ngx_http_credit_stats;

    if (st == NULL
        || rec->status == NGX_HTTP_CREDIT_ST_NONE
        || rec->status > NGX_HTTP_CREDIT_ST_ERROR)
    {
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
    if (ngx_http_credit_stats) {
        (void) ngx_atomic_fetch_add(&ngx_http_credit_stats->mc_failures, 1);
    }
}


ngx_int_t
ngx_http_credit_stats_handler(ngx_http_request_t *r)
{
    u_char                   *body, *p;
    size_t                    len;
    ngx_uint_t                i;
    ngx_http_credit_stats_t  *st;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return ngx_http_credit_admin_error(r, NGX_HTTP_NOT_ALLOWED,
                                           "method_not_allowed", "use GET");
    }

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    st = ngx_http_credit_stats;

    if (st == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
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
                        &ngx_http_credit_status_names[i], st->requests[i]);
    }

    p = ngx_sprintf(p, "},\"credits\":{\"charged\":%uA,\"refunded\":%uA},"
                    "\"memcached\":{\"failures\":%uA}}\n",
                    st->charged, st->refunded, st->mc_failures);

    return ngx_http_credit_send_json(r, NGX_HTTP_OK, body, p - body);
}
