
/*
 * ngx_http_credit_module: directives, configuration and phase registration.
 */


#include "ngx_http_credit_module.h"


#define NGX_HTTP_CREDIT_HANDLER_ADMIN    1
#define NGX_HTTP_CREDIT_HANDLER_BALANCE  2
#define NGX_HTTP_CREDIT_HANDLER_STATS    3


static ngx_int_t ngx_http_credit_preconfiguration(ngx_conf_t *cf);
static ngx_int_t ngx_http_credit_postconfiguration(ngx_conf_t *cf);
static void *ngx_http_credit_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_credit_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_credit_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_credit_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static char *ngx_http_credit_matrix(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_credit_memcached(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_credit_previous(ngx_conf_t *cf,
    ngx_http_credit_main_conf_t *cmcf, ngx_str_t *list);
static char *ngx_http_credit_refund_status(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_credit_content(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_credit_init_process(ngx_cycle_t *cycle);
static void ngx_http_credit_exit_process(ngx_cycle_t *cycle);


static ngx_conf_enum_t  ngx_http_credit_fail_modes[] = {
    { ngx_string("closed"), 0 },
    { ngx_string("open"), 1 },
    { ngx_null_string, 0 }
};


static ngx_command_t  ngx_http_credit_commands[] = {

    { ngx_string("credit_matrix"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_credit_matrix,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("credit_memcached"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_credit_memcached,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("credit_key_prefix"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_credit_loc_conf_t, key_prefix),
      NULL },

    { ngx_string("credit"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_credit_loc_conf_t, enable),
      NULL },

    { ngx_string("credit_account"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_credit_loc_conf_t, account),
      NULL },

    { ngx_string("credit_refund_status"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_credit_refund_status,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("credit_fail"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_credit_loc_conf_t, fail_open),
      &ngx_http_credit_fail_modes },

    { ngx_string("credit_headers"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_credit_loc_conf_t, headers),
      NULL },

    { ngx_string("credit_body_limit"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_credit_loc_conf_t, body_limit),
      NULL },

    { ngx_string("credit_admin"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_credit_content,
      NGX_HTTP_LOC_CONF_OFFSET,
      NGX_HTTP_CREDIT_HANDLER_ADMIN,
      NULL },

    { ngx_string("credit_balance"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_credit_content,
      NGX_HTTP_LOC_CONF_OFFSET,
      NGX_HTTP_CREDIT_HANDLER_BALANCE,
      NULL },

    { ngx_string("credit_stats"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_credit_content,
      NGX_HTTP_LOC_CONF_OFFSET,
      NGX_HTTP_CREDIT_HANDLER_STATS,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_credit_module_ctx = {
    ngx_http_credit_preconfiguration,      /* preconfiguration */
    ngx_http_credit_postconfiguration,     /* postconfiguration */

    ngx_http_credit_create_main_conf,      /* create main configuration */
    ngx_http_credit_init_main_conf,        /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_credit_create_loc_conf,       /* create location configuration */
    ngx_http_credit_merge_loc_conf         /* merge location configuration */
};


ngx_module_t  ngx_http_credit_module = {
    NGX_MODULE_V1,
    &ngx_http_credit_module_ctx,           /* module context */
    ngx_http_credit_commands,              /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_credit_init_process,          /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_credit_exit_process,          /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_int_t
ngx_http_credit_preconfiguration(ngx_conf_t *cf)
{
    return ngx_http_credit_add_variables(cf);
}


static ngx_int_t
ngx_http_credit_postconfiguration(ngx_conf_t *cf)
{
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    /*
     * The precontent phase runs after access checks (allow/deny,
     * auth_request), so a refused client is never charged, and before
     * proxy_pass, so the charge is made before the upstream works.
     */

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_PRECONTENT_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_credit_handler;

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_credit_log_handler;

    return ngx_http_credit_filter_init(cf);
}


static void *
ngx_http_credit_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_credit_main_conf_t  *cmcf;

    cmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_credit_main_conf_t));
    if (cmcf == NULL) {
        return NULL;
    }

    if (ngx_array_init(&cmcf->servers, cf->pool, 2, sizeof(ngx_addr_t))
        != NGX_OK)
    {
        return NULL;
    }

    cmcf->timeout = NGX_CONF_UNSET_MSEC;
    cmcf->connect_timeout = NGX_CONF_UNSET_MSEC;
    cmcf->retry_timeout = NGX_CONF_UNSET_UINT;
    cmcf->refund_retry = NGX_CONF_UNSET_UINT;
    cmcf->max_batch = NGX_CONF_UNSET_UINT;
    cmcf->max_pending = NGX_CONF_UNSET_UINT;

    return cmcf;
}


static char *
ngx_http_credit_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_credit_main_conf_t *cmcf = conf;

    ngx_conf_init_msec_value(cmcf->timeout, 500);
    ngx_conf_init_msec_value(cmcf->connect_timeout, 200);
    ngx_conf_init_uint_value(cmcf->retry_timeout, 1);
    ngx_conf_init_uint_value(cmcf->refund_retry, 300);
    ngx_conf_init_uint_value(cmcf->max_batch, 64);
    ngx_conf_init_uint_value(cmcf->max_pending, 10000);

    return NGX_CONF_OK;
}


static void *
ngx_http_credit_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_credit_loc_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_credit_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     conf->account = NULL;
     *     conf->key_prefix = { 0, NULL };
     *     conf->refund_codes = NULL;
     *     conf->handler = 0;
     */

    conf->matrix = NGX_CONF_UNSET_PTR;
    conf->enable = NGX_CONF_UNSET;
    conf->refund_5xx = NGX_CONF_UNSET_UINT;
    conf->fail_open = NGX_CONF_UNSET_UINT;
    conf->headers = NGX_CONF_UNSET;
    conf->body_limit = NGX_CONF_UNSET_SIZE;

    return conf;
}


static char *
ngx_http_credit_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_credit_loc_conf_t *prev = parent;
    ngx_http_credit_loc_conf_t *conf = child;

    ngx_http_credit_main_conf_t  *cmcf;

    ngx_conf_merge_ptr_value(conf->matrix, prev->matrix, NULL);
    ngx_conf_merge_value(conf->enable, prev->enable, 0);
    ngx_conf_merge_str_value(conf->key_prefix, prev->key_prefix, "credit:");
    ngx_conf_merge_uint_value(conf->fail_open, prev->fail_open, 0);
    ngx_conf_merge_value(conf->headers, prev->headers, 1);
    ngx_conf_merge_size_value(conf->body_limit, prev->body_limit,
                              16 * 1024 * 1024);

    if (conf->account == NULL) {
        conf->account = prev->account;
    }

    if (conf->refund_5xx == NGX_CONF_UNSET_UINT) {
        if (prev->refund_5xx == NGX_CONF_UNSET_UINT) {
            conf->refund_5xx = 1;
            conf->refund_codes = NULL;

        } else {
            conf->refund_5xx = prev->refund_5xx;
            conf->refund_codes = prev->refund_codes;
        }
    }

    if (conf->key_prefix.len > 100) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "credit_key_prefix \"%V\" is longer than "
                           "100 bytes", &conf->key_prefix);
        return NGX_CONF_ERROR;
    }

    if (!conf->enable
        && (conf->handler == 0
            || conf->handler == NGX_HTTP_CREDIT_HANDLER_STATS))
    {
        return NGX_CONF_OK;
    }

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_credit_module);

    if (cmcf->servers.nelts == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"credit_memcached\" is required where "
                           "\"credit on\", \"credit_admin\" or "
                           "\"credit_balance\" is used");
        return NGX_CONF_ERROR;
    }

    if (conf->enable && conf->matrix == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"credit on\" needs a \"credit_matrix\"");
        return NGX_CONF_ERROR;
    }

    if ((conf->enable
         || conf->handler == NGX_HTTP_CREDIT_HANDLER_BALANCE)
        && conf->account == NULL)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"credit_account\" is required where "
                           "\"credit on\" or \"credit_balance\" is used");
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_credit_matrix(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_credit_loc_conf_t *clcf = conf;

    ngx_str_t  *value, file;

    if (clcf->matrix != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;
    file = value[1];

    if (ngx_conf_full_name(cf->cycle, &file, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return ngx_http_credit_matrix_load(cf, &file, &clcf->matrix);
}


static char *
ngx_http_credit_memcached(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_credit_main_conf_t *cmcf = conf;

    u_char       *p, *list;
    char         *rv;
    size_t        len;
    ssize_t       size;
    ngx_int_t     n;
    ngx_str_t    *value, v, name;
    ngx_url_t     u;
    ngx_uint_t    i, j;
    ngx_addr_t   *addr;

    if (cmcf->servers.nelts) {
        return "is duplicate";
    }

    value = cf->args->elts;
    size = 10 * 1024 * 1024;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "timeout=", 8) == 0) {
            v.data = value[i].data + 8;
            v.len = value[i].len - 8;
            cmcf->timeout = ngx_parse_time(&v, 0);
            if (cmcf->timeout == (ngx_msec_t) NGX_ERROR
                || cmcf->timeout == 0)
            {
                goto invalid;
            }
            continue;
        }

        if (ngx_strncmp(value[i].data, "connect_timeout=", 16) == 0) {
            v.data = value[i].data + 16;
            v.len = value[i].len - 16;
            cmcf->connect_timeout = ngx_parse_time(&v, 0);
            if (cmcf->connect_timeout == (ngx_msec_t) NGX_ERROR
                || cmcf->connect_timeout == 0)
            {
                goto invalid;
            }
            continue;
        }

        if (ngx_strncmp(value[i].data, "retry_timeout=", 14) == 0) {
            v.data = value[i].data + 14;
            v.len = value[i].len - 14;
            n = ngx_parse_time(&v, 1);
            if (n == NGX_ERROR || n == 0) {
                goto invalid;
            }
            cmcf->retry_timeout = n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "refund_retry=", 13) == 0) {
            v.data = value[i].data + 13;
            v.len = value[i].len - 13;
            n = ngx_parse_time(&v, 1);
            if (n == NGX_ERROR || n == 0) {
                goto invalid;
            }
            cmcf->refund_retry = n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "max_batch=", 10) == 0) {
            n = ngx_atoi(value[i].data + 10, value[i].len - 10);
            if (n == NGX_ERROR || n < 1 || n > 1024) {
                goto invalid;
            }
            cmcf->max_batch = n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "cache=", 6) == 0) {
            v.data = value[i].data + 6;
            v.len = value[i].len - 6;

            if (v.len == 3 && ngx_strncmp(v.data, "off", 3) == 0) {
                size = 0;
                continue;
            }

            size = ngx_parse_size(&v);
            if (size == NGX_ERROR || size < 64 * 1024) {
                goto invalid;
            }
            continue;
        }

        if (ngx_strncmp(value[i].data, "previous=", 9) == 0) {
            v.data = value[i].data + 9;
            v.len = value[i].len - 9;

            rv = ngx_http_credit_previous(cf, cmcf, &v);
            if (rv != NGX_CONF_OK) {
                return rv;
            }
            continue;
        }

        if (ngx_strncmp(value[i].data, "max_pending=", 12) == 0) {
            n = ngx_atoi(value[i].data + 12, value[i].len - 12);
            if (n == NGX_ERROR || n < 1) {
                goto invalid;
            }
            cmcf->max_pending = n;
            continue;
        }

        if (ngx_strlchr(value[i].data, value[i].data + value[i].len, '=')
            != NULL)
        {
            goto invalid;
        }

        ngx_memzero(&u, sizeof(ngx_url_t));

        u.url = value[i];

        if (ngx_parse_url(cf->pool, &u) != NGX_OK || u.no_port) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid memcached server \"%V\"%s%s",
                               &value[i], u.err ? ": " : ", expected host:port",
                               u.err ? u.err : "");
            return NGX_CONF_ERROR;
        }

        /*
         * An account's balance lives at one address.  A name with several
         * (round-robin DNS; "localhost" as ::1 and 127.0.0.1) would leave
         * the choice to the resolver's order, which may differ from one
         * start or reload to the next and move balances silently.
         */

        if (u.naddrs > 1) {
            len = 0;

            for (j = 0; j < u.naddrs; j++) {
                len += u.addrs[j].name.len + 2;
            }

            list = ngx_pnalloc(cf->temp_pool, len);
            if (list == NULL) {
                return NGX_CONF_ERROR;
            }

            p = list;

            for (j = 0; j < u.naddrs; j++) {
                if (j) {
                    *p++ = ',';
                    *p++ = ' ';
                }

                p = ngx_cpymem(p, u.addrs[j].name.data, u.addrs[j].name.len);
            }

            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "memcached server \"%V\" has %ui addresses "
                               "(%*s): a balance must live at one address, "
                               "name one of them", &value[i], u.naddrs,
                               p - list, list);
            return NGX_CONF_ERROR;
        }

        addr = ngx_array_push(&cmcf->servers);
        if (addr == NULL) {
            return NGX_CONF_ERROR;
        }

        *addr = u.addrs[0];
        addr->name = value[i];

        for (j = 0; j < cmcf->servers.nelts - 1; j++) {
            if (((ngx_addr_t *) cmcf->servers.elts)[j].name.len
                    == value[i].len
                && ngx_strncmp(((ngx_addr_t *) cmcf->servers.elts)[j].name.data,
                               value[i].data, value[i].len) == 0)
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "duplicate memcached server \"%V\"",
                                   &value[i]);
                return NGX_CONF_ERROR;
            }
        }
    }

    if (cmcf->servers.nelts == 0) {
        return "needs at least one server";
    }

    if (ngx_http_credit_stats_zone(cf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (size) {
        ngx_str_set(&name, "credit_cache");

        cmcf->cache_zone = ngx_shared_memory_add(cf, &name, size,
                                                 &ngx_http_credit_module);
        if (cmcf->cache_zone == NULL) {
            return NGX_CONF_ERROR;
        }

        cmcf->cache_zone->data = ngx_http_credit_cache_create(cf);
        if (cmcf->cache_zone->data == NULL) {
            return NGX_CONF_ERROR;
        }

        cmcf->cache_zone->init = ngx_http_credit_cache_init_zone;
    }

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid parameter \"%V\"", &value[i]);
    return NGX_CONF_ERROR;
}


/*
 * previous=A,B,C: the servers before a change of the tier, written as
 * they were in credit_memcached.  An account whose server differs between
 * the two lists is unavailable, not empty, while its balance is not on
 * its new server yet (scripts/move-balances moves it there).
 */

static char *
ngx_http_credit_previous(ngx_conf_t *cf, ngx_http_credit_main_conf_t *cmcf,
    ngx_str_t *list)
{
    u_char      *p, *last, *comma;
    ngx_url_t    u;
    ngx_str_t   *name, *names;
    ngx_uint_t   j;

    if (cmcf->previous) {
        return "has \"previous=\" twice";
    }

    cmcf->previous = ngx_array_create(cf->pool, 4, sizeof(ngx_str_t));
    if (cmcf->previous == NULL) {
        return NGX_CONF_ERROR;
    }

    p = list->data;
    last = p + list->len;

    for ( ;; ) {
        comma = ngx_strlchr(p, last, ',');
        if (comma == NULL) {
            comma = last;
        }

        ngx_memzero(&u, sizeof(ngx_url_t));

        u.url.data = p;
        u.url.len = comma - p;
        u.no_resolve = 1;

        if (u.url.len == 0
            || ngx_parse_url(cf->temp_pool, &u) != NGX_OK
            || u.no_port)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid memcached server \"%V\" in "
                               "\"previous=%V\"%s%s", &u.url, list,
                               u.err ? ": " : ", expected host:port",
                               u.err ? u.err : "");
            return NGX_CONF_ERROR;
        }

        names = cmcf->previous->elts;

        for (j = 0; j < cmcf->previous->nelts; j++) {
            if (names[j].len == u.url.len
                && ngx_strncmp(names[j].data, u.url.data, u.url.len) == 0)
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "duplicate memcached server \"%V\" in "
                                   "\"previous=%V\"", &u.url, list);
                return NGX_CONF_ERROR;
            }
        }

        name = ngx_array_push(cmcf->previous);
        if (name == NULL) {
            return NGX_CONF_ERROR;
        }

        *name = u.url;

        if (comma == last) {
            return NGX_CONF_OK;
        }

        p = comma + 1;
    }
}


static char *
ngx_http_credit_refund_status(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_credit_loc_conf_t *clcf = conf;

    ngx_int_t    n;
    ngx_str_t   *value;
    ngx_uint_t   i, *code;

    if (clcf->refund_5xx != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    clcf->refund_5xx = 0;
    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {

        if (value[i].len == 3 && ngx_strncasecmp(value[i].data,
                                                 (u_char *) "5xx", 3) == 0)
        {
            clcf->refund_5xx = 1;
            continue;
        }

        if (value[i].len == 3 && ngx_strcmp(value[i].data, "off") == 0) {
            continue;
        }

        n = ngx_atoi(value[i].data, value[i].len);
        if (n < 100 || n > 599) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid refund status \"%V\"", &value[i]);
            return NGX_CONF_ERROR;
        }

        if (clcf->refund_codes == NULL) {
            clcf->refund_codes = ngx_array_create(cf->pool, 4,
                                                  sizeof(ngx_uint_t));
            if (clcf->refund_codes == NULL) {
                return NGX_CONF_ERROR;
            }
        }

        code = ngx_array_push(clcf->refund_codes);
        if (code == NULL) {
            return NGX_CONF_ERROR;
        }

        *code = n;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_credit_content(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_credit_loc_conf_t *clcf = conf;

    ngx_http_core_loc_conf_t  *core;

    if (clcf->handler) {
        return "is duplicate";
    }

    clcf->handler = cmd->offset;

    core = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    switch (cmd->offset) {

    case NGX_HTTP_CREDIT_HANDLER_ADMIN:
        core->handler = ngx_http_credit_admin_handler;
        break;

    case NGX_HTTP_CREDIT_HANDLER_BALANCE:
        core->handler = ngx_http_credit_balance_handler;
        break;

    default: /* NGX_HTTP_CREDIT_HANDLER_STATS */
        if (ngx_http_credit_stats_zone(cf) != NGX_OK) {
            return NGX_CONF_ERROR;
        }

        core->handler = ngx_http_credit_stats_handler;
        break;
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_credit_init_process(ngx_cycle_t *cycle)
{
    ngx_http_credit_main_conf_t  *cmcf;

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    cmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_credit_module);

    if (cmcf == NULL) {
        return NGX_OK;
    }

    ngx_http_credit_stats_init_process(cmcf);

    if (cmcf->servers.nelts == 0) {
        return NGX_OK;
    }

    return ngx_http_credit_store_init(cycle, cmcf);
}


static void
ngx_http_credit_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_credit_main_conf_t  *cmcf;

    cmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_credit_module);

    if (cmcf == NULL || cmcf->store == NULL) {
        return;
    }

    ngx_http_credit_store_exit(cmcf);
}
