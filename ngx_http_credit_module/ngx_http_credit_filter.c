
/*
 * ngx_http_credit_module: after the upstream.  The header filter sees the
 * final status of proxied and nginx-made (502/504) responses, refunds a
 * charge whose status is a refund status and adds the X-Credits-*
 * headers; the log phase catches what never reached the header filter
 * (a client that closed: 499).  A refund is a fire-and-forget task that
 * owns a copy of what it needs, and the record makes it happen once.
 */


#include "ngx_http_credit_module.h"


static ngx_int_t ngx_http_credit_header_filter(ngx_http_request_t *r);
static ngx_uint_t ngx_http_credit_refundable(ngx_http_credit_loc_conf_t *clcf,
    ngx_uint_t status);


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;


ngx_int_t
ngx_http_credit_filter_init(ngx_conf_t *cf)
{
    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_credit_header_filter;

    return NGX_OK;
}


static ngx_int_t
ngx_http_credit_header_filter(ngx_http_request_t *r)
{
    ngx_http_credit_rec_t  *rec;

    if (r != r->main) {
        return ngx_http_next_header_filter(r);
    }

    rec = ngx_http_credit_get_rec(r, 0);

    if (rec == NULL || rec->conf == NULL) {
        return ngx_http_next_header_filter(r);
    }

    if (rec->charged && !rec->refunded
        && ngx_http_credit_refundable(rec->conf, r->headers_out.status))
    {
        ngx_http_credit_refund(rec, "upstream failed");
    }

    if (!rec->conf->headers) {
        return ngx_http_next_header_filter(r);
    }

    switch (rec->status) {

    case NGX_HTTP_CREDIT_ST_CHARGED:
    case NGX_HTTP_CREDIT_ST_REFUNDED:
    case NGX_HTTP_CREDIT_ST_INSUFFICIENT:
    case NGX_HTTP_CREDIT_ST_FREE:
        break;

    default:
        return ngx_http_next_header_filter(r);
    }

    if (ngx_http_credit_add_header(r, "X-Credits-Cost",
                                   sizeof("X-Credits-Cost") - 1, rec->cost)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (rec->has_remaining
        && ngx_http_credit_add_header(r, "X-Credits-Remaining",
                                      sizeof("X-Credits-Remaining") - 1,
                                      rec->remaining)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (rec->refunded
        && ngx_http_credit_add_header(r, "X-Credits-Refunded",
                                      sizeof("X-Credits-Refunded") - 1,
                                      rec->cost)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_next_header_filter(r);
}


ngx_int_t
ngx_http_credit_log_handler(ngx_http_request_t *r)
{
    ngx_uint_t              status;
    ngx_http_credit_rec_t  *rec;

    /*
     * A subrequest logged with log_subrequest (a mirror, say) shares the
     * main request's record: its status is not the request's answer.
     */

    if (r != r->main) {
        return NGX_OK;
    }

    rec = ngx_http_credit_get_rec(r, 0);

    if (rec == NULL) {
        return NGX_OK;
    }

    if (rec->charged && !rec->refunded) {
        status = r->err_status ? r->err_status : r->headers_out.status;

        if (ngx_http_credit_refundable(rec->conf, status)) {
            ngx_http_credit_refund(rec, "request failed");
        }
    }

    ngx_http_credit_stats_count(rec);

    return NGX_OK;
}


static ngx_uint_t
ngx_http_credit_refundable(ngx_http_credit_loc_conf_t *clcf,
    ngx_uint_t status)
{
    ngx_uint_t  i, *codes;

    if (clcf->refund_5xx && status >= 500 && status <= 599) {
        return 1;
    }

    if (clcf->refund_codes == NULL) {
        return 0;
    }

    codes = clcf->refund_codes->elts;

    for (i = 0; i < clcf->refund_codes->nelts; i++) {
        if (codes[i] == status) {
            return 1;
        }
    }

    return 0;
}


/* gives the exact charge back to the buckets it came from, once */

void
ngx_http_credit_refund(ngx_http_credit_rec_t *rec, const char *why)
{
    ngx_log_t                    *log;
    ngx_http_request_t           *r;
    ngx_http_credit_main_conf_t  *cmcf;

    r = rec->request;
    log = r->connection->log;

    rec->refunded = 1;
    rec->status = NGX_HTTP_CREDIT_ST_REFUNDED;

    ngx_log_error(NGX_LOG_INFO, log, 0,
                  "credit: refund of %L credits (plan %L, pack %L) to "
                  "\"%V\": %s", rec->cost, rec->plan_charged,
                  rec->pack_charged, &rec->account, why);

    cmcf = ngx_http_get_module_main_conf(r, ngx_http_credit_module);

    ngx_http_credit_owe(cmcf->store, &rec->key, rec->plan_charged,
                        rec->pack_charged, log);
}


ngx_int_t
ngx_http_credit_add_header(ngx_http_request_t *r, char *name, size_t len,
    int64_t value)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->value.data = ngx_pnalloc(r->pool, NGX_INT64_LEN);
    if (h->value.data == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif
    h->key.data = (u_char *) name;
    h->key.len = len;
    h->value.len = ngx_sprintf(h->value.data, "%L", value) - h->value.data;

    return NGX_OK;
}
