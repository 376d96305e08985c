
/*
 * ngx_http_credit_module: the request state machine, in the precontent
 * phase.  Route, account, price; then the charge goes to memcached
 * while the request is suspended; on resume the request either goes on to
 * the content handler (proxy_pass) or gets a JSON error.
 */


#include "ngx_http_credit_module.h"


#define NGX_HTTP_CREDIT_CAPTURES  (3 * 32)


static void ngx_http_credit_cleanup(void *data);
static ngx_int_t ngx_http_credit_start(ngx_http_request_t *r,
    ngx_http_credit_loc_conf_t *clcf, ngx_http_credit_rec_t *rec);
static ngx_int_t ngx_http_credit_send_error(ngx_http_request_t *r,
    ngx_http_credit_rec_t *rec);
static void ngx_http_credit_wait_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_credit_read_body(ngx_http_request_t *r,
    ngx_http_credit_route_t *rt, ngx_http_credit_rec_t *rec);
static void ngx_http_credit_body_handler(ngx_http_request_t *r);
static void ngx_http_credit_too_large(ngx_http_credit_route_t *rt,
    ngx_http_credit_rec_t *rec);


ngx_int_t
ngx_http_credit_handler(ngx_http_request_t *r)
{
    ngx_int_t                    rc;
    ngx_http_credit_rec_t       *rec;
    ngx_http_credit_loc_conf_t  *clcf;

    if (r != r->main) {
        return NGX_DECLINED;
    }

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_credit_module);

    rec = ngx_http_credit_get_rec(r, 0);

    if (rec) {

        /* resumed, or re-entered after an internal redirect */

        switch (rec->state) {

        case NGX_HTTP_CREDIT_STATE_WAIT:
        case NGX_HTTP_CREDIT_STATE_BODY:
            return NGX_AGAIN;

        case NGX_HTTP_CREDIT_STATE_DONE:
            goto decided;

        default:
            break;
        }
    }

    if (!clcf->enable) {
        return NGX_DECLINED;
    }

    if (rec == NULL) {
        rec = ngx_http_credit_get_rec(r, 1);
        if (rec == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    rc = ngx_http_credit_start(r, clcf, rec);

    if (rc == NGX_AGAIN || rc == NGX_DONE) {
        return rc;
    }

    rec->state = NGX_HTTP_CREDIT_STATE_DONE;

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

decided:

    /* our own error answer is sent once; afterwards the request goes on */

    if (rec->http_status) {
        rc = ngx_http_credit_send_error(r, rec);
        rec->http_status = 0;
        ngx_http_finalize_request(r, rc);
        return NGX_DONE;
    }

    return NGX_DECLINED;
}


/* NGX_OK: decided (rec->http_status may hold an error); NGX_AGAIN: wait */

static ngx_int_t
ngx_http_credit_start(ngx_http_request_t *r, ngx_http_credit_loc_conf_t *clcf,
    ngx_http_credit_rec_t *rec)
{
    int                     *captures;
    ngx_int_t                rc;
    ngx_http_credit_route_t  *rt;

    rec->conf = clcf;

    if (!ngx_http_credit_plain_path(r)) {
        ngx_str_set(&rec->detail, "the path has a dot or empty segment, an "
                    "encoded separator, a backslash or a semicolon: the "
                    "backend could read it otherwise");
        rec->status = NGX_HTTP_CREDIT_ST_INVALID;
        rec->http_status = NGX_HTTP_BAD_REQUEST;
        return NGX_OK;
    }

    captures = NULL;

    if (clcf->matrix->regex) {
        captures = ngx_palloc(r->pool,
                              NGX_HTTP_CREDIT_CAPTURES * sizeof(int));
        if (captures == NULL) {
            return NGX_ERROR;
        }
    }

    rt = ngx_http_credit_find_route(r, clcf->matrix, captures,
                                    NGX_HTTP_CREDIT_CAPTURES);

    if (rt == NULL) {
        if (clcf->matrix->unmatched_free) {
            rec->status = NGX_HTTP_CREDIT_ST_FREE;
            return NGX_OK;
        }

        rec->status = NGX_HTTP_CREDIT_ST_UNPRICED;
        rec->http_status = NGX_HTTP_FORBIDDEN;
        return NGX_OK;
    }

    rec->route = rt->name;

    if (ngx_http_complex_value(r, clcf->account, &rec->account) != NGX_OK) {
        return NGX_ERROR;
    }

    if (rec->account.len == 0) {
        rec->status = NGX_HTTP_CREDIT_ST_MISSING_ACCOUNT;
        rec->http_status = NGX_HTTP_UNAUTHORIZED;
        return NGX_OK;
    }

    if (rt->needs_body) {

        /* only routes with body parameters read the body first */

        if (!rec->body_read) {
            return ngx_http_credit_read_body(r, rt, rec);
        }

        rc = ngx_http_credit_body_params(r, rt, rec);

        if (rc == NGX_ERROR) {
            return NGX_ERROR;
        }

        if (rc == NGX_DECLINED) {
            rec->status = NGX_HTTP_CREDIT_ST_INVALID;
            if (rec->http_status == 0) {
                rec->http_status = NGX_HTTP_BAD_REQUEST;
            }
            return NGX_OK;
        }
    }

    /* the key first: its balance cache entry comes while we price */

    if (ngx_http_credit_make_key(r->pool, &clcf->key_prefix, &rec->account,
                                 &rec->key)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_http_credit_prefetch(r, &rec->key);

    rc = ngx_http_credit_price(r, rt, captures, rec);

    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    if (rc == NGX_DECLINED) {
        rec->status = NGX_HTTP_CREDIT_ST_INVALID;
        rec->http_status = NGX_HTTP_BAD_REQUEST;
        return NGX_OK;
    }

    rec->request = r;

    rc = ngx_http_credit_charge(r, rec);

    if (rc == NGX_AGAIN) {
        rec->state = NGX_HTTP_CREDIT_STATE_WAIT;

        r->main->blocked++;
        r->read_event_handler = ngx_http_test_reading;
        r->write_event_handler = ngx_http_credit_wait_handler;

        return NGX_AGAIN;
    }

    /* memcached is down or too busy to take it */

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "credit: cannot send the charge of \"%V\" to memcached",
                  &rec->account);

    ngx_http_credit_charged(rec, NGX_HTTP_CREDIT_RC_FAIL);

    return NGX_OK;
}


/*
 * Reads the body before pricing, as the mirror module does: nginx keeps
 * it (preserve_body) and proxy_pass sends the same bytes, from memory or
 * from the temp file.  NGX_DONE: the body handler resumes the phases.
 */

static ngx_int_t
ngx_http_credit_read_body(ngx_http_request_t *r, ngx_http_credit_route_t *rt,
    ngx_http_credit_rec_t *rec)
{
    ngx_int_t  rc;

    if (r->headers_in.content_length_n > (off_t) rec->conf->body_limit) {
        ngx_http_credit_too_large(rt, rec);
        return NGX_OK;
    }

    rec->state = NGX_HTTP_CREDIT_STATE_BODY;

    rc = ngx_http_read_client_request_body(r, ngx_http_credit_body_handler);

    if (rc == NGX_HTTP_REQUEST_ENTITY_TOO_LARGE) {

        /* client_max_body_size said no: answer in JSON like the rest */

        rec->state = NGX_HTTP_CREDIT_STATE_NEW;
        ngx_http_credit_too_large(rt, rec);
        return NGX_OK;
    }

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    ngx_http_finalize_request(r, NGX_DONE);

    return NGX_DONE;
}


static void
ngx_http_credit_body_handler(ngx_http_request_t *r)
{
    ngx_http_credit_rec_t  *rec;

    rec = ngx_http_credit_get_rec(r, 0);

    rec->body_read = 1;
    rec->state = NGX_HTTP_CREDIT_STATE_NEW;

    r->preserve_body = 1;

    r->write_event_handler = ngx_http_core_run_phases;
    ngx_http_core_run_phases(r);
}


static void
ngx_http_credit_too_large(ngx_http_credit_route_t *rt,
    ngx_http_credit_rec_t *rec)
{
    ngx_uint_t                i;
    ngx_http_credit_param_t  *p;

    p = rt->params.elts;

    for (i = 0; i < rt->params.nelts; i++) {
        if (p[i].from == NGX_HTTP_CREDIT_FROM_JSON
            || p[i].from == NGX_HTTP_CREDIT_FROM_FORM)
        {
            rec->param = p[i].name;
            break;
        }
    }

    ngx_str_set(&rec->detail, "the body is larger than credit_body_limit");

    rec->status = NGX_HTTP_CREDIT_ST_INVALID;
    rec->http_status = NGX_HTTP_REQUEST_ENTITY_TOO_LARGE;
}


static void
ngx_http_credit_wait_handler(ngx_http_request_t *r)
{
    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "credit: waiting for memcached");
}


/*
 * The store's verdict on a charge.  Called on the event loop, either from
 * the completion event (the request waits: resume it) or directly when
 * the charge could not even be queued.
 */

void
ngx_http_credit_charged(ngx_http_credit_rec_t *rec, ngx_uint_t rc)
{
    char                        *why;
    ngx_uint_t                   waiting;
    ngx_connection_t            *c;
    ngx_http_request_t          *r;
    ngx_http_credit_loc_conf_t  *clcf;

    r = rec->request;
    c = r->connection;
    clcf = rec->conf;

    waiting = (rec->state == NGX_HTTP_CREDIT_STATE_WAIT);
    rec->state = NGX_HTTP_CREDIT_STATE_DONE;

    switch (rc) {

    case NGX_HTTP_CREDIT_RC_OK:
        if (rec->cost) {
            rec->charged = 1;
            rec->status = NGX_HTTP_CREDIT_ST_CHARGED;

        } else {
            rec->status = NGX_HTTP_CREDIT_ST_FREE;
        }

        break;

    case NGX_HTTP_CREDIT_RC_SHORT:
        rec->status = NGX_HTTP_CREDIT_ST_INSUFFICIENT;
        rec->http_status = NGX_HTTP_CREDIT_402;
        break;

    default: /* NGX_HTTP_CREDIT_RC_FAIL */
        why = rec->unmoved ? "balance not on its new memcached server yet "
                             "(previous=)"
                           : "memcached unavailable";

        if (clcf->fail_open) {
            rec->status = NGX_HTTP_CREDIT_ST_UNMETERED;
            ngx_log_error(NGX_LOG_ERR, c->log, 0,
                          "credit: %s, request of \"%V\" passed uncharged "
                          "(credit_fail open)", why, &rec->account);

        } else {
            rec->status = NGX_HTTP_CREDIT_ST_ERROR;
            rec->http_status = NGX_HTTP_SERVICE_UNAVAILABLE;
            ngx_log_error(NGX_LOG_ERR, c->log, 0,
                          "credit: %s, request of \"%V\" refused "
                          "(credit_fail closed)", why, &rec->account);
        }

        break;
    }

    if (!waiting) {
        return;
    }

    r->main->blocked--;

    ngx_http_set_log_request(c->log, r);

    if (c->error) {

        /* the client went away while we waited: it got nothing */

        if (rec->charged) {
            ngx_http_credit_refund(rec, "client closed the connection");
        }

        r->write_event_handler(r);

    } else {
        r->write_event_handler = ngx_http_core_run_phases;
        ngx_http_core_run_phases(r);
    }

    ngx_http_run_posted_requests(c);
}


ngx_http_credit_rec_t *
ngx_http_credit_get_rec(ngx_http_request_t *r, ngx_uint_t create)
{
    ngx_pool_cleanup_t     *cln;
    ngx_http_credit_rec_t  *rec;

    rec = ngx_http_get_module_ctx(r->main, ngx_http_credit_module);

    if (rec) {
        return rec;
    }

    /*
     * The ctx is wiped by internal redirects (which mark the request
     * internal); the cleanup is not.  Without a redirect there is nothing
     * to look for: every response passes here, metered or not.
     */

    if (!r->main->internal && !create) {
        return NULL;
    }

    for (cln = r->main->pool->cleanup; cln; cln = cln->next) {
        if (cln->handler == ngx_http_credit_cleanup) {
            rec = cln->data;
            ngx_http_set_ctx(r->main, rec, ngx_http_credit_module);
            return rec;
        }
    }

    if (!create) {
        return NULL;
    }

    cln = ngx_pool_cleanup_add(r->main->pool, sizeof(ngx_http_credit_rec_t));
    if (cln == NULL) {
        return NULL;
    }

    rec = cln->data;
    ngx_memzero(rec, sizeof(ngx_http_credit_rec_t));

    rec->request = r->main;

    cln->handler = ngx_http_credit_cleanup;

    ngx_http_set_ctx(r->main, rec, ngx_http_credit_module);

    return rec;
}


static void
ngx_http_credit_cleanup(void *data)
{
    /* the record is only found through this handler; nothing to free */
}


static ngx_int_t
ngx_http_credit_send_error(ngx_http_request_t *r, ngx_http_credit_rec_t *rec)
{
    u_char      *p, *body;
    size_t       len;
    uintptr_t    e_route, e_param, e_detail;
    ngx_str_t   *error, detail;
    ngx_uint_t   status;

    static ngx_str_t  errors[] = {
        ngx_string("insufficient_credits"),
        ngx_string("invalid_parameter"),
        ngx_string("body_too_large"),
        ngx_string("unpriced_route"),
        ngx_string("missing_account"),
        ngx_string("metering_unavailable")
    };

    status = rec->http_status;
    detail = rec->detail;

    switch (status) {

    case NGX_HTTP_CREDIT_402:
        error = &errors[0];
        ngx_str_set(&detail, "the balance is below the cost of this request");
        break;

    case NGX_HTTP_BAD_REQUEST:
        error = &errors[1];
        break;

    case NGX_HTTP_REQUEST_ENTITY_TOO_LARGE:
        error = &errors[2];
        break;

    case NGX_HTTP_FORBIDDEN:
        error = &errors[3];
        ngx_str_set(&detail, "no route of the cost matrix matches this "
                    "request");
        break;

    case NGX_HTTP_UNAUTHORIZED:
        error = &errors[4];
        ngx_str_set(&detail, "the request names no account");
        break;

    default: /* NGX_HTTP_SERVICE_UNAVAILABLE */
        error = &errors[5];
        ngx_str_set(&detail, "credit metering is unavailable, retry later");
        break;
    }

    e_route = ngx_escape_json(NULL, rec->route.data, rec->route.len);
    e_param = ngx_escape_json(NULL, rec->param.data, rec->param.len);
    e_detail = ngx_escape_json(NULL, detail.data, detail.len);

    len = sizeof("{\"error\":\"\",\"route\":\"\",\"param\":\"\","
                 "\"detail\":\"\",\"cost\":,\"remaining\":}\n")
          + error->len
          + rec->route.len + e_route
          + rec->param.len + e_param
          + detail.len + e_detail
          + 2 * NGX_INT64_LEN;

    body = ngx_pnalloc(r->pool, len);
    if (body == NULL) {
        return NGX_ERROR;
    }

    p = ngx_sprintf(body, "{\"error\":\"%V\"", error);

    if (rec->route.len) {
        p = ngx_cpymem(p, ",\"route\":\"", sizeof(",\"route\":\"") - 1);
        p = (u_char *) ngx_escape_json(p, rec->route.data, rec->route.len);
        *p++ = '"';
    }

    if (rec->param.len) {
        p = ngx_cpymem(p, ",\"param\":\"", sizeof(",\"param\":\"") - 1);
        p = (u_char *) ngx_escape_json(p, rec->param.data, rec->param.len);
        *p++ = '"';
    }

    if (status == NGX_HTTP_CREDIT_402) {
        p = ngx_sprintf(p, ",\"cost\":%L,\"remaining\":%L", rec->cost,
                        rec->remaining);
    }

    if (detail.len) {
        p = ngx_cpymem(p, ",\"detail\":\"", sizeof(",\"detail\":\"") - 1);
        p = (u_char *) ngx_escape_json(p, detail.data, detail.len);
        *p++ = '"';
    }

    *p++ = '}';
    *p++ = '\n';

    if (status == NGX_HTTP_SERVICE_UNAVAILABLE
        && ngx_http_credit_retry_after(r) != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_credit_send_json(r, status, body, p - body);
}


ngx_int_t
ngx_http_credit_send_json(ngx_http_request_t *r, ngx_uint_t status,
    u_char *body, size_t len)
{
    ngx_int_t     rc;
    ngx_buf_t    *b;
    ngx_chain_t   out;

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        r->keepalive = 0;
    }

    r->headers_out.status = status;
    r->headers_out.content_length_n = len;
    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;

    if (r->method == NGX_HTTP_HEAD) {
        r->header_only = 1;
    }

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->last = ngx_cpymem(b->last, body, len);
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


ngx_int_t
ngx_http_credit_retry_after(ngx_http_request_t *r)
{
    return ngx_http_credit_add_header(r, "Retry-After",
                                      sizeof("Retry-After") - 1, 1);
}
