
/*
 * ngx_http_credit_module: pricing.  Finds the route of a request, reads
 * and checks its parameters, and computes the cost from the compiled
 * matrix.  Runs on the event loop and never blocks.
 */


#include "ngx_http_credit_module.h"


static ngx_int_t ngx_http_credit_read_param(ngx_http_request_t *r,
    ngx_http_credit_param_t *p, ngx_str_t *body, int *captures,
    ngx_str_t *raw, ngx_str_t *detail);
static ngx_int_t ngx_http_credit_percent(u_char *p, u_char *last);
static ngx_uint_t ngx_http_credit_arg_is(u_char *p, u_char *last,
    ngx_str_t *key);
static ngx_uint_t ngx_http_credit_header_is(ngx_str_t *name, ngx_str_t *key);
static ngx_int_t ngx_http_credit_header(ngx_http_request_t *r,
    ngx_str_t *key, ngx_str_t *raw);
static ngx_int_t ngx_http_credit_invalid(ngx_http_request_t *r,
    ngx_http_credit_rec_t *rec, ngx_http_credit_param_t *p,
    ngx_str_t *detail);


static ngx_str_t  ngx_http_credit_true = ngx_string("true");
static ngx_str_t  ngx_http_credit_false = ngx_string("false");


/*
 * Routes match nginx's normalized $uri, but proxy_pass without a URI
 * sends the path as the client wrote it.  Where the two could be read
 * apart the price would be another path's: dot segments ("/./", "/../"),
 * empty ones ("//"), an encoded slash, backslash or dot ("..%2F",
 * "%2e%2e"), a backslash (a separator to some servers) or a ";" (where
 * Java servers cut path parameters off).  A path without them is read
 * alike by nginx and any backend.
 */

ngx_uint_t
ngx_http_credit_plain_path(ngx_http_request_t *r)
{
    u_char      c, *p, *last;
    ngx_int_t   n;
    ngx_uint_t  len, dots;

    p = r->unparsed_uri.data;

    if (p == NULL) {
        return 1;
    }

    last = p + r->unparsed_uri.len;

    /* the segment being read: its length and how many of it are dots */

    len = 0;
    dots = 0;

    for ( /* void */ ; p < last && *p != '?'; p++) {
        c = *p;
        n = ngx_http_credit_percent(p, last);

        if (n != NGX_ERROR) {
            c = (u_char) n;
            p += 2;

            if (c == '/' || c == '\\') {
                return 0;
            }

        } else if (c == '/') {

            if (p != r->unparsed_uri.data
                && (len == 0 || (len <= 2 && dots == len)))
            {
                return 0;
            }

            len = 0;
            dots = 0;
            continue;
        }

        if (c == '\\' || c == ';') {
            return 0;
        }

        len++;
        dots += (c == '.');
    }

    return !(len && len <= 2 && dots == len);
}


ngx_http_credit_route_t *
ngx_http_credit_find_route(ngx_http_request_t *r,
    ngx_http_credit_matrix_t *matrix, int *captures, ngx_int_t ncaptures)
{
    ngx_str_t                *m;
    ngx_uint_t                i, j;
    ngx_http_credit_route_t  *rt;

    rt = matrix->routes.elts;

    for (i = 0; i < matrix->routes.nelts; i++, rt++) {

        if (rt->methods) {
            m = rt->methods->elts;

            /*
             * GET takes HEAD as well, as in limit_except: backends answer
             * HEAD by running their GET handler, so it costs the same
             */

            for (j = 0; j < rt->methods->nelts; j++) {
                if (m[j].len == r->method_name.len
                    && ngx_strncmp(m[j].data, r->method_name.data, m[j].len)
                       == 0)
                {
                    break;
                }

                if (r->method == NGX_HTTP_HEAD
                    && m[j].len == 3
                    && ngx_strncmp(m[j].data, "GET", 3) == 0)
                {
                    break;
                }
            }

            if (j == rt->methods->nelts) {
                continue;
            }
        }

        switch (rt->match) {

        case NGX_HTTP_CREDIT_MATCH_EXACT:
            if (r->uri.len == rt->path.len
                && ngx_strncmp(r->uri.data, rt->path.data, rt->path.len) == 0)
            {
                return rt;
            }

            break;

        case NGX_HTTP_CREDIT_MATCH_PREFIX:
            if (r->uri.len >= rt->path.len
                && ngx_strncmp(r->uri.data, rt->path.data, rt->path.len) == 0)
            {
                return rt;
            }

            break;

#if (NGX_PCRE)
        default: /* NGX_HTTP_CREDIT_MATCH_REGEX */
            if ((ngx_int_t) (rt->captures + 1) * 3 > ncaptures) {
                ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                              "credit: route \"%V\" has too many captures",
                              &rt->name);
                break;
            }

            if (ngx_regex_exec(rt->regex, &r->uri, captures,
                               (rt->captures + 1) * 3)
                >= 0)
            {
                return rt;
            }

            break;
#endif
        }
    }

    return NULL;
}


/*
 * Prices the request: rec->cost on NGX_OK; on NGX_DECLINED the request is
 * invalid and rec->param and rec->detail say why (a 400).
 */

ngx_int_t
ngx_http_credit_price(ngx_http_request_t *r, ngx_http_credit_route_t *rt,
    int *captures, ngx_http_credit_rec_t *rec)
{
    size_t                    len;
    int64_t                   cost, m;
    ngx_int_t                 rc;
    ngx_str_t                 raw, detail;
    ngx_uint_t                i, comma, *times, *idx;
    ngx_http_credit_add_t    *add;
    ngx_http_credit_tier_t   *tier;
    ngx_http_credit_param_t  *p;
    ngx_http_credit_value_t  *values, *v, grid;
    ngx_http_credit_entry_t  *e;

    p = rt->params.elts;
    values = NULL;

    if (rt->params.nelts) {
        values = ngx_palloc(r->pool,
                            rt->params.nelts * sizeof(ngx_http_credit_value_t));
        if (values == NULL) {
            return NGX_ERROR;
        }
    }

    for (i = 0; i < rt->params.nelts; i++) {

        ngx_str_null(&detail);

        rc = ngx_http_credit_read_param(r, &p[i],
                                        rec->body_values
                                        ? &rec->body_values[i] : NULL,
                                        captures, &raw, &detail);

        if (rc == NGX_ERROR) {
            return NGX_ERROR;
        }

        if (rc == NGX_DECLINED) {
            return ngx_http_credit_invalid(r, rec, &p[i], &detail);
        }

        if (rc == NGX_DONE) {
            if (!p[i].has_default) {
                ngx_str_set(&detail, "is required");
                return ngx_http_credit_invalid(r, rec, &p[i], &detail);
            }

            values[i] = p[i].def;
            continue;
        }

        rc = ngx_http_credit_parse_value(r->pool, &p[i], &raw, &values[i],
                                         &detail);

        if (rc == NGX_OK) {
            rc = ngx_http_credit_check_value(r->pool, &p[i], &values[i],
                                             &detail);
        }

        if (rc == NGX_DECLINED) {
            return ngx_http_credit_invalid(r, rec, &p[i], &detail);
        }

        if (rc != NGX_OK) {
            return NGX_ERROR;
        }
    }

    /* the base price */

    if (rt->cost.by < 0) {
        cost = rt->cost.base;

    } else {
        v = &values[rt->cost.by];
        cost = -1;
        comma = 0;

        if (rt->cost.grid) {

            /*
             * The values joined with commas, as the table's keys are.  A
             * value with a comma in it is priced by no key: "x,y" and "z"
             * must not take the price of "x" and "y,z", or of "x" and "y".
             */

            idx = rt->cost.grid->elts;
            len = rt->cost.grid->nelts;

            for (i = 0; i < rt->cost.grid->nelts; i++) {
                len += values[idx[i]].str.len;

                if (ngx_strlchr(values[idx[i]].str.data,
                                values[idx[i]].str.data
                                + values[idx[i]].str.len, ',')
                    != NULL)
                {
                    comma = 1;
                }
            }

            grid.str.len = 0;
            grid.str.data = ngx_pnalloc(r->pool, len);
            if (grid.str.data == NULL) {
                return NGX_ERROR;
            }

            for (i = 0; i < rt->cost.grid->nelts; i++) {
                if (i) {
                    grid.str.data[grid.str.len++] = ',';
                }

                ngx_memcpy(grid.str.data + grid.str.len,
                           values[idx[i]].str.data, values[idx[i]].str.len);
                grid.str.len += values[idx[i]].str.len;
            }

            v = &grid;
        }

        if (comma) {
            /* no key prices it: the cost stays unknown */

        } else if (rt->cost.table) {
            e = rt->cost.table->elts;

            for (i = 0; i < rt->cost.table->nelts; i++) {
                if (e[i].value.str.len == v->str.len
                    && ngx_strncmp(e[i].value.str.data, v->str.data,
                                   v->str.len) == 0)
                {
                    cost = e[i].cost;
                    break;
                }
            }

        } else {
            tier = rt->cost.tiers->elts;

            for (i = 0; i < rt->cost.tiers->nelts; i++) {
                if (tier[i].open || v->num <= tier[i].upto) {
                    cost = tier[i].cost;
                    break;
                }
            }
        }

        if (cost < 0) {
            detail.data = ngx_pnalloc(r->pool, v->str.len + 32);
            if (detail.data == NULL) {
                return NGX_ERROR;
            }

            detail.len = ngx_sprintf(detail.data, "has no price for \"%V\"",
                                     &v->str)
                         - detail.data;

            return ngx_http_credit_invalid(r, rec, &p[rt->cost.by], &detail);
        }
    }

    /* times and add */

    if (rt->cost.times) {
        times = rt->cost.times->elts;

        for (i = 0; i < rt->cost.times->nelts; i++) {
            m = values[times[i]].num;

            if (m < 0) {
                ngx_str_set(&detail, "must not be negative");
                return ngx_http_credit_invalid(r, rec, &p[times[i]],
                                               &detail);
            }

            if (m && cost > NGX_HTTP_CREDIT_MAX_COST / m) {
                ngx_str_set(&detail, "makes the cost too large");
                return ngx_http_credit_invalid(r, rec, &p[times[i]],
                                               &detail);
            }

            cost *= m;
        }
    }

    if (rt->cost.add) {
        add = rt->cost.add->elts;

        for (i = 0; i < rt->cost.add->nelts; i++) {
            if (values[add[i].param].num) {
                cost += add[i].amount;

                if (cost > NGX_HTTP_CREDIT_MAX_COST) {
                    ngx_str_set(&detail, "makes the cost too large");
                    return ngx_http_credit_invalid(r, rec, &p[add[i].param],
                                                   &detail);
                }
            }
        }
    }

    rec->cost = cost;
    rec->priced = 1;

    return NGX_OK;
}


static ngx_int_t
ngx_http_credit_invalid(ngx_http_request_t *r, ngx_http_credit_rec_t *rec,
    ngx_http_credit_param_t *p, ngx_str_t *detail)
{
    rec->param = p->name;
    rec->detail = *detail;

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "credit: invalid parameter \"%V\": %V", &p->name, detail);

    return NGX_DECLINED;
}


/*
 * NGX_OK: raw is set; NGX_DONE: absent; NGX_DECLINED: unusable (detail
 * says why).
 */

static ngx_int_t
ngx_http_credit_read_param(ngx_http_request_t *r, ngx_http_credit_param_t *p,
    ngx_str_t *body, int *captures, ngx_str_t *raw, ngx_str_t *detail)
{
    ngx_int_t                   rc;
    ngx_http_variable_value_t  *vv;

    switch (p->from) {

    case NGX_HTTP_CREDIT_FROM_QUERY:
        rc = ngx_http_credit_arg(r->pool, &r->args, &p->key, raw);
        break;

    case NGX_HTTP_CREDIT_FROM_JSON:
    case NGX_HTTP_CREDIT_FROM_FORM:

        /* extracted from the body beforehand, see body.c */

        if (body == NULL || body->data == NULL) {
            return NGX_DONE;
        }

        *raw = *body;
        return NGX_OK;

    case NGX_HTTP_CREDIT_FROM_HEADER:
        rc = ngx_http_credit_header(r, &p->key, raw);
        break;

    case NGX_HTTP_CREDIT_FROM_PATH:
        if (captures == NULL || captures[p->index] < 0) {
            return NGX_DONE;
        }

        raw->data = r->uri.data + captures[p->index];
        raw->len = captures[p->index + 1] - captures[p->index];

        return NGX_OK;

    case NGX_HTTP_CREDIT_FROM_VAR:
        vv = ngx_http_get_indexed_variable(r, p->index);

        if (vv == NULL) {
            return NGX_ERROR;
        }

        if (vv->not_found) {
            return NGX_DONE;
        }

        raw->data = vv->data;
        raw->len = vv->len;

        return NGX_OK;

    default:
        return NGX_DONE;
    }

    if (rc == NGX_DECLINED) {
        ngx_str_set(detail, "is given more than once");
    }

    return rc;
}


/* the byte a "%XX" at p stands for, or NGX_ERROR where p starts none */

static ngx_int_t
ngx_http_credit_percent(u_char *p, u_char *last)
{
    ngx_int_t  hi, lo;

    if (*p != '%' || last - p < 3) {
        return NGX_ERROR;
    }

    hi = ngx_hextoi(p + 1, 1);
    lo = ngx_hextoi(p + 2, 1);

    if (hi == NGX_ERROR || lo == NGX_ERROR) {
        return NGX_ERROR;
    }

    return hi * 16 + lo;
}


/*
 * Whether a name in a query string or a form is the key, read as the
 * upstream reads it: "+" is a space and "%XX" a byte, so that
 * "resol%75tion=4k" is not left unpriced while the backend does 4k.
 */

static ngx_uint_t
ngx_http_credit_arg_is(u_char *p, u_char *last, ngx_str_t *key)
{
    u_char      c, *k, *end;
    ngx_int_t   n;

    k = key->data;
    end = k + key->len;

    /* a byte is one to three characters */

    if ((size_t) (last - p) < key->len
        || (size_t) (last - p) > 3 * key->len)
    {
        return 0;
    }

    while (p < last) {
        n = ngx_http_credit_percent(p, last);

        if (n != NGX_ERROR) {
            c = (u_char) n;
            p += 3;

        } else {
            c = (*p == '+') ? ' ' : *p;
            p++;
        }

        if (k == end || *k++ != c) {
            return 0;
        }
    }

    return k == end;
}


/*
 * The unescaped value of argument "key" in "a=1&b=2" (a query string or
 * an urlencoded body); "+" is a space.  NGX_DONE: absent; NGX_DECLINED:
 * given more than once.
 */

ngx_int_t
ngx_http_credit_arg(ngx_pool_t *pool, ngx_str_t *args, ngx_str_t *key,
    ngx_str_t *raw)
{
    u_char     *p, *last, *name, *eq, *end, *dst, *src;
    ngx_int_t   n;
    ngx_str_t   found;

    if (args->len == 0) {
        return NGX_DONE;
    }

    p = args->data;
    last = p + args->len;
    found.data = NULL;
    found.len = 0;

    while (p < last) {
        name = p;

        end = ngx_strlchr(p, last, '&');
        if (end == NULL) {
            end = last;
        }

        eq = ngx_strlchr(name, end, '=');

        if (ngx_http_credit_arg_is(name, eq ? eq : end, key)) {
            if (found.data) {
                return NGX_DECLINED;
            }

            found.data = eq ? eq + 1 : end;
            found.len = end - found.data;
        }

        p = end + 1;
    }

    if (found.data == NULL) {
        return NGX_DONE;
    }

    dst = ngx_pnalloc(pool, found.len + 1);
    if (dst == NULL) {
        return NGX_ERROR;
    }

    /*
     * decoded as the name is: "+" a space, "%XX" a byte, and a "%" that
     * starts no such pair stays itself ("1%2" is no number 1)
     */

    raw->data = dst;
    last = found.data + found.len;

    for (src = found.data; src < last; src++) {
        if (*src == '+') {
            *dst++ = ' ';
            continue;
        }

        n = ngx_http_credit_percent(src, last);

        if (n != NGX_ERROR) {
            *dst++ = (u_char) n;
            src += 2;
            continue;
        }

        *dst++ = *src;
    }

    raw->len = dst - raw->data;

    return NGX_OK;
}


/*
 * Whether a request header's name is the key: case-insensitive, and "_"
 * the same as "-", as backends that see headers as CGI variables read
 * them (X_Quality and X-Quality are both HTTP_X_QUALITY) when nginx
 * passes names with underscores (underscores_in_headers on).
 */

static ngx_uint_t
ngx_http_credit_header_is(ngx_str_t *name, ngx_str_t *key)
{
    u_char      a, b;
    ngx_uint_t  k;

    if (name->len != key->len) {
        return 0;
    }

    for (k = 0; k < key->len; k++) {
        a = ngx_tolower(name->data[k]);
        b = ngx_tolower(key->data[k]);

        if (a == '_') {
            a = '-';
        }

        if (b == '_') {
            b = '-';
        }

        if (a != b) {
            return 0;
        }
    }

    return 1;
}


static ngx_int_t
ngx_http_credit_header(ngx_http_request_t *r, ngx_str_t *key, ngx_str_t *raw)
{
    ngx_uint_t        i, found;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    part = &r->headers_in.headers.part;
    h = part->elts;
    found = 0;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (ngx_http_credit_header_is(&h[i].key, key)) {
            if (found) {
                return NGX_DECLINED;
            }

            *raw = h[i].value;
            found = 1;
        }
    }

    return found ? NGX_OK : NGX_DONE;
}


/*
 * Turns a raw string into a typed, canonical value.  Used for matrix
 * values at configuration time and for request input.
 */

ngx_int_t
ngx_http_credit_parse_value(ngx_pool_t *pool, ngx_http_credit_param_t *p,
    ngx_str_t *raw, ngx_http_credit_value_t *v, ngx_str_t *detail)
{
    u_char      *s, *last;
    int64_t      n;
    ngx_uint_t   neg;

    switch (p->type) {

    case NGX_HTTP_CREDIT_TYPE_INTEGER:

        s = raw->data;
        last = s + raw->len;
        neg = 0;

        if (s < last && (*s == '-' || *s == '+')) {
            neg = (*s == '-');
            s++;
        }

        if (s == last || last - s > 16) {
            goto not_integer;
        }

        for (n = 0; s < last; s++) {
            if (*s < '0' || *s > '9') {
                goto not_integer;
            }

            n = n * 10 + (*s - '0');
        }

        v->num = neg ? -n : n;

        v->str.data = ngx_pnalloc(pool, NGX_INT64_LEN);
        if (v->str.data == NULL) {
            return NGX_ERROR;
        }

        v->str.len = ngx_sprintf(v->str.data, "%L", v->num) - v->str.data;

        return NGX_OK;

    case NGX_HTTP_CREDIT_TYPE_BOOLEAN:

        if ((raw->len == 4 && ngx_strncasecmp(raw->data, (u_char *) "true", 4)
                              == 0)
            || (raw->len == 3
                && ngx_strncasecmp(raw->data, (u_char *) "yes", 3) == 0)
            || (raw->len == 2
                && ngx_strncasecmp(raw->data, (u_char *) "on", 2) == 0)
            || (raw->len == 1 && raw->data[0] == '1'))
        {
            v->num = 1;
            v->str = ngx_http_credit_true;
            return NGX_OK;
        }

        if ((raw->len == 5
             && ngx_strncasecmp(raw->data, (u_char *) "false", 5) == 0)
            || (raw->len == 2
                && ngx_strncasecmp(raw->data, (u_char *) "no", 2) == 0)
            || (raw->len == 3
                && ngx_strncasecmp(raw->data, (u_char *) "off", 3) == 0)
            || (raw->len == 1 && raw->data[0] == '0'))
        {
            v->num = 0;
            v->str = ngx_http_credit_false;
            return NGX_OK;
        }

        ngx_str_set(detail, "must be a boolean (true or false)");
        return NGX_DECLINED;

    default: /* NGX_HTTP_CREDIT_TYPE_STRING */
        v->str = *raw;
        v->num = 0;
        return NGX_OK;
    }

not_integer:

    ngx_str_set(detail, "must be an integer");
    return NGX_DECLINED;
}


ngx_int_t
ngx_http_credit_check_value(ngx_pool_t *pool, ngx_http_credit_param_t *p,
    ngx_http_credit_value_t *v, ngx_str_t *detail)
{
    u_char                   *d;
    size_t                    len;
    ngx_uint_t                i;
    ngx_http_credit_value_t  *values;

    if (p->has_min && v->num < p->min) {
        d = ngx_pnalloc(pool, 64);
        if (d == NULL) {
            return NGX_ERROR;
        }

        detail->data = d;
        detail->len = ngx_sprintf(d, "must be at least %L", p->min) - d;
        return NGX_DECLINED;
    }

    if (p->has_max && v->num > p->max) {
        d = ngx_pnalloc(pool, 64);
        if (d == NULL) {
            return NGX_ERROR;
        }

        detail->data = d;
        detail->len = ngx_sprintf(d, "must be at most %L", p->max) - d;
        return NGX_DECLINED;
    }

    if (p->values == NULL) {
        return NGX_OK;
    }

    values = p->values->elts;
    len = sizeof("must be one of: ");

    for (i = 0; i < p->values->nelts; i++) {
        if (values[i].str.len == v->str.len
            && ngx_strncmp(values[i].str.data, v->str.data, v->str.len) == 0)
        {
            return NGX_OK;
        }

        len += values[i].str.len + 2;
    }

    d = ngx_pnalloc(pool, len);
    if (d == NULL) {
        return NGX_ERROR;
    }

    detail->data = d;
    d = ngx_cpymem(d, "must be one of: ", sizeof("must be one of: ") - 1);

    for (i = 0; i < p->values->nelts; i++) {
        if (i) {
            *d++ = ',';
            *d++ = ' ';
        }

        d = ngx_cpymem(d, values[i].str.data, values[i].str.len);
    }

    detail->len = d - detail->data;

    return NGX_DECLINED;
}
