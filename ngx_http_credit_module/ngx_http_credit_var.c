
/*
 * ngx_http_credit_module: the $credit_* variables, read from the charge
 * record, so an access log line per request is a complete ledger entry.
 */


#include "ngx_http_credit_module.h"


#define NGX_HTTP_CREDIT_VAR_ACCOUNT       0
#define NGX_HTTP_CREDIT_VAR_ROUTE         1
#define NGX_HTTP_CREDIT_VAR_COST          2
#define NGX_HTTP_CREDIT_VAR_REMAINING     3
#define NGX_HTTP_CREDIT_VAR_PLAN_CHARGED  4
#define NGX_HTTP_CREDIT_VAR_PACK_CHARGED  5
#define NGX_HTTP_CREDIT_VAR_STATUS        6


static ngx_int_t ngx_http_credit_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_str_t *ngx_http_credit_status_name(ngx_uint_t status);


static ngx_http_variable_t  ngx_http_credit_vars[] = {

    { ngx_string("credit_account"), NULL, ngx_http_credit_variable,
      NGX_HTTP_CREDIT_VAR_ACCOUNT, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("credit_route"), NULL, ngx_http_credit_variable,
      NGX_HTTP_CREDIT_VAR_ROUTE, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("credit_cost"), NULL, ngx_http_credit_variable,
      NGX_HTTP_CREDIT_VAR_COST, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("credit_remaining"), NULL, ngx_http_credit_variable,
      NGX_HTTP_CREDIT_VAR_REMAINING, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("credit_plan_charged"), NULL, ngx_http_credit_variable,
      NGX_HTTP_CREDIT_VAR_PLAN_CHARGED, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("credit_pack_charged"), NULL, ngx_http_credit_variable,
      NGX_HTTP_CREDIT_VAR_PACK_CHARGED, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("credit_status"), NULL, ngx_http_credit_variable,
      NGX_HTTP_CREDIT_VAR_STATUS, NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


/* $credit_status, by NGX_HTTP_CREDIT_ST_*; credit_stats names them so */

ngx_str_t  ngx_http_credit_status_names[] = {
    ngx_null_string,
    ngx_string("charged"),
    ngx_string("refunded"),
    ngx_string("free"),
    ngx_string("insufficient"),
    ngx_string("invalid"),
    ngx_string("unpriced"),
    ngx_string("missing_account"),
    ngx_string("unmetered"),
    ngx_string("error")
};


ngx_int_t
ngx_http_credit_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_credit_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


static ngx_str_t *
ngx_http_credit_status_name(ngx_uint_t status)
{
    return &ngx_http_credit_status_names[status];
}


static ngx_int_t
ngx_http_credit_variable(ngx_http_request_t *r, ngx_http_variable_value_t *v,
    uintptr_t data)
{
    u_char                 *p;
    int64_t                 n;
    ngx_str_t              *s;
    ngx_http_credit_rec_t  *rec;

    rec = ngx_http_credit_get_rec(r, 0);

    if (rec == NULL || rec->status == NGX_HTTP_CREDIT_ST_NONE) {
        v->not_found = 1;
        return NGX_OK;
    }

    switch (data) {

    case NGX_HTTP_CREDIT_VAR_ACCOUNT:
        s = &rec->account;
        goto string;

    case NGX_HTTP_CREDIT_VAR_ROUTE:
        s = &rec->route;
        goto string;

    case NGX_HTTP_CREDIT_VAR_STATUS:
        s = ngx_http_credit_status_name(rec->status);
        goto string;

    case NGX_HTTP_CREDIT_VAR_COST:
        if (!rec->priced && rec->status != NGX_HTTP_CREDIT_ST_FREE) {
            v->not_found = 1;
            return NGX_OK;
        }

        n = rec->cost;
        break;

    case NGX_HTTP_CREDIT_VAR_REMAINING:
        if (!rec->has_remaining) {
            v->not_found = 1;
            return NGX_OK;
        }

        n = rec->remaining;
        break;

    case NGX_HTTP_CREDIT_VAR_PLAN_CHARGED:
        n = rec->plan_charged;
        break;

    default: /* NGX_HTTP_CREDIT_VAR_PACK_CHARGED */
        n = rec->pack_charged;
        break;
    }

    p = ngx_pnalloc(r->pool, NGX_INT64_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    v->len = ngx_sprintf(p, "%L", n) - p;
    v->data = p;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;

string:

    if (s->len == 0) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->len = s->len;
    v->data = s->data;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}
