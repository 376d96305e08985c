
/*
 * ngx_http_credit_module: the YAML cost matrix.  Loaded with libyaml at
 * configuration time, validated completely and compiled into routes,
 * parameters and cost rules, so that no YAML is touched per request.
 * Every error names the matrix file, the line and the reason.
 */


#include "ngx_http_credit_module.h"

#include <yaml.h>


#define NGX_HTTP_CREDIT_MAX_FIELDS  8


typedef struct {
    ngx_conf_t                *cf;
    ngx_str_t                 *file;
    yaml_document_t           *doc;
    ngx_http_credit_route_t   *route;
    u_char                    *names;       /* the route regex's named */
    ngx_uint_t                 name_size;   /* captures, for from: path */
    ngx_uint_t                 named;
} ngx_http_credit_yaml_t;


static ngx_int_t ngx_http_credit_error(ngx_http_credit_yaml_t *y,
    yaml_node_t *node, const char *fmt, ...);
static yaml_node_t *ngx_http_credit_node(ngx_http_credit_yaml_t *y,
    int id);
static ngx_int_t ngx_http_credit_fields(ngx_http_credit_yaml_t *y,
    yaml_node_t *node, char **names, yaml_node_t **out, const char *what);
static ngx_int_t ngx_http_credit_scalar(ngx_http_credit_yaml_t *y,
    yaml_node_t *node, ngx_str_t *s, const char *what);
static ngx_int_t ngx_http_credit_integer(ngx_http_credit_yaml_t *y,
    yaml_node_t *node, int64_t *n, int64_t min, const char *what);
static ngx_int_t ngx_http_credit_root(ngx_http_credit_yaml_t *y,
    yaml_node_t *root, ngx_http_credit_matrix_t *m);
static ngx_int_t ngx_http_credit_route(ngx_http_credit_yaml_t *y,
    yaml_node_t *node, ngx_http_credit_matrix_t *m);
static ngx_int_t ngx_http_credit_match(ngx_http_credit_yaml_t *y,
    yaml_node_t *node, ngx_http_credit_route_t *rt);
static ngx_int_t ngx_http_credit_param(ngx_http_credit_yaml_t *y,
    yaml_node_t *name, yaml_node_t *node, ngx_http_credit_route_t *rt);
static ngx_int_t ngx_http_credit_json_path(ngx_http_credit_yaml_t *y,
    yaml_node_t *node, ngx_http_credit_param_t *p);
static ngx_int_t ngx_http_credit_param_value(ngx_http_credit_yaml_t *y,
    yaml_node_t *node, ngx_http_credit_param_t *p,
    ngx_http_credit_value_t *v, ngx_uint_t check);
static ngx_int_t ngx_http_credit_cost(ngx_http_credit_yaml_t *y,
    yaml_node_t *node, ngx_http_credit_route_t *rt);
static ngx_int_t ngx_http_credit_cost_table(ngx_http_credit_yaml_t *y,
    yaml_node_t *node, ngx_http_credit_route_t *rt);
static ngx_int_t ngx_http_credit_cost_grid(ngx_http_credit_yaml_t *y,
    yaml_node_t *by, yaml_node_t *node, ngx_http_credit_route_t *rt);
static ngx_int_t ngx_http_credit_cost_tiers(ngx_http_credit_yaml_t *y,
    yaml_node_t *node, ngx_http_credit_route_t *rt);
static ngx_int_t ngx_http_credit_param_list(ngx_http_credit_yaml_t *y,
    yaml_node_t *node, ngx_uint_t type, const char *what,
    ngx_array_t **list);
static ngx_int_t ngx_http_credit_cost_add(ngx_http_credit_yaml_t *y,
    yaml_node_t *node, ngx_http_credit_route_t *rt);
static ngx_int_t ngx_http_credit_param_ref(ngx_http_credit_yaml_t *y,
    yaml_node_t *node, ngx_uint_t type, const char *what);


static char *ngx_http_credit_root_fields[] = {
    "version", "unmatched", "routes", NULL
};

static char *ngx_http_credit_route_fields[] = {
    "name", "match", "params", "cost", NULL
};

static char *ngx_http_credit_match_fields[] = {
    "method", "path", "prefix", "regex", NULL
};

static char *ngx_http_credit_param_fields[] = {
    "from", "key", "type", "default", "values", "min", "max", NULL
};

static char *ngx_http_credit_cost_fields[] = {
    "base", "by", "table", "tiers", "times", "add", NULL
};

static char *ngx_http_credit_tier_fields[] = {
    "upto", "cost", NULL
};

static ngx_str_t  ngx_http_credit_from_names[] = {
    ngx_string("query"),
    ngx_string("header"),
    ngx_string("json"),
    ngx_string("form"),
    ngx_string("path"),
    ngx_string("var"),
    ngx_null_string
};

static ngx_str_t  ngx_http_credit_type_names[] = {
    ngx_string("string"),
    ngx_string("integer"),
    ngx_string("boolean"),
    ngx_null_string
};


char *
ngx_http_credit_matrix_load(ngx_conf_t *cf, ngx_str_t *file,
    ngx_http_credit_matrix_t **matrix)
{
    FILE                      *fp;
    ngx_int_t                  rc;
    yaml_node_t               *root;
    yaml_parser_t              parser;
    yaml_document_t            doc;
    ngx_http_credit_yaml_t     y;
    ngx_http_credit_matrix_t  *m;

    fp = fopen((char *) file->data, "rb");
    if (fp == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "cannot open credit matrix \"%V\"", file);
        return NGX_CONF_ERROR;
    }

    if (!yaml_parser_initialize(&parser)) {
        fclose(fp);
        return NGX_CONF_ERROR;
    }

    yaml_parser_set_input_file(&parser, fp);

    if (!yaml_parser_load(&parser, &doc)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "%V:%uz: invalid YAML: %s", file,
                           (size_t) parser.problem_mark.line + 1,
                           parser.problem ? parser.problem : "syntax error");
        yaml_parser_delete(&parser);
        fclose(fp);
        return NGX_CONF_ERROR;
    }

    yaml_parser_delete(&parser);
    fclose(fp);

    m = ngx_pcalloc(cf->pool, sizeof(ngx_http_credit_matrix_t));
    if (m == NULL) {
        yaml_document_delete(&doc);
        return NGX_CONF_ERROR;
    }

    m->file = *file;

    if (ngx_array_init(&m->routes, cf->pool, 8,
                       sizeof(ngx_http_credit_route_t))
        != NGX_OK)
    {
        yaml_document_delete(&doc);
        return NGX_CONF_ERROR;
    }

    y.cf = cf;
    y.file = file;
    y.doc = &doc;
    y.route = NULL;
    y.names = NULL;
    y.named = 0;
    y.name_size = 0;

    root = yaml_document_get_root_node(&doc);

    if (root == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "%V:1: the cost matrix is empty", file);
        rc = NGX_ERROR;

    } else {
        rc = ngx_http_credit_root(&y, root, m);
    }

    yaml_document_delete(&doc);

    if (rc != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    *matrix = m;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_credit_error(ngx_http_credit_yaml_t *y, yaml_node_t *node,
    const char *fmt, ...)
{
    u_char   *p;
    va_list   args;
    u_char    msg[NGX_MAX_CONF_ERRSTR];

    va_start(args, fmt);
    p = ngx_vslprintf(msg, msg + sizeof(msg) - 1, fmt, args);
    va_end(args);

    *p = '\0';

    if (y->route && y->route->name.len) {
        ngx_conf_log_error(NGX_LOG_EMERG, y->cf, 0,
                           "%V:%uz: %s (route \"%V\")", y->file,
                           (size_t) node->start_mark.line + 1, msg,
                           &y->route->name);

    } else {
        ngx_conf_log_error(NGX_LOG_EMERG, y->cf, 0, "%V:%uz: %s", y->file,
                           (size_t) node->start_mark.line + 1, msg);
    }

    return NGX_ERROR;
}


static yaml_node_t *
ngx_http_credit_node(ngx_http_credit_yaml_t *y, int id)
{
    return yaml_document_get_node(y->doc, id);
}


/*
 * Walks a mapping whose keys must come from "names": out[i] is the value
 * node of names[i], or NULL.  Unknown and repeated keys are errors.
 */

static ngx_int_t
ngx_http_credit_fields(ngx_http_credit_yaml_t *y, yaml_node_t *node,
    char **names, yaml_node_t **out, const char *what)
{
    ngx_str_t          key;
    ngx_uint_t         i;
    yaml_node_t       *k;
    yaml_node_pair_t  *pair;

    for (i = 0; names[i]; i++) {
        out[i] = NULL;
    }

    if (node->type != YAML_MAPPING_NODE) {
        return ngx_http_credit_error(y, node, "%s must be a mapping", what);
    }

    for (pair = node->data.mapping.pairs.start;
         pair < node->data.mapping.pairs.top;
         pair++)
    {
        k = ngx_http_credit_node(y, pair->key);

        if (ngx_http_credit_scalar(y, k, &key, "a key") != NGX_OK) {
            return NGX_ERROR;
        }

        for (i = 0; names[i]; i++) {
            if (ngx_strlen(names[i]) == key.len
                && ngx_strncmp(names[i], key.data, key.len) == 0)
            {
                break;
            }
        }

        if (names[i] == NULL) {
            return ngx_http_credit_error(y, k, "unknown key \"%V\" in %s",
                                         &key, what);
        }

        if (out[i] != NULL) {
            return ngx_http_credit_error(y, k, "duplicate key \"%V\" in %s",
                                         &key, what);
        }

        out[i] = ngx_http_credit_node(y, pair->value);
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_credit_scalar(ngx_http_credit_yaml_t *y, yaml_node_t *node,
    ngx_str_t *s, const char *what)
{
    if (node->type != YAML_SCALAR_NODE) {
        return ngx_http_credit_error(y, node, "%s must be a scalar", what);
    }

    s->data = node->data.scalar.value;
    s->len = node->data.scalar.length;

    return NGX_OK;
}


static ngx_int_t
ngx_http_credit_integer(ngx_http_credit_yaml_t *y, yaml_node_t *node,
    int64_t *n, int64_t min, const char *what)
{
    u_char     *p, *last;
    int64_t     v;
    ngx_str_t   s;
    ngx_uint_t  neg;

    if (ngx_http_credit_scalar(y, node, &s, what) != NGX_OK) {
        return NGX_ERROR;
    }

    p = s.data;
    last = s.data + s.len;
    neg = 0;

    if (p < last && *p == '-') {
        neg = 1;
        p++;
    }

    if (node->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) {
        return ngx_http_credit_error(y, node, "%s must be an integer, not "
                                     "the quoted string \"%V\"", what, &s);
    }

    if (p == last) {
        goto invalid;
    }

    /* past the limit it stops growing: no overflow */

    for (v = 0; p < last; p++) {
        if (*p < '0' || *p > '9') {
            goto invalid;
        }

        if (v <= NGX_HTTP_CREDIT_MAX_COST) {
            v = v * 10 + (*p - '0');
        }
    }

    if (v > NGX_HTTP_CREDIT_MAX_COST) {
        if (neg) {
            goto invalid;
        }

        return ngx_http_credit_error(y, node, "%s must be at most %L, not "
                                     "\"%V\"", what,
                                     (int64_t) NGX_HTTP_CREDIT_MAX_COST, &s);
    }

    if (neg) {
        v = -v;
    }

    if (v < min) {
        goto invalid;
    }

    *n = v;

    return NGX_OK;

invalid:

    if (min == 0) {
        return ngx_http_credit_error(y, node, "%s must be a non-negative "
                                     "integer, not \"%V\"", what, &s);
    }

    return ngx_http_credit_error(y, node, "%s must be an integer, not \"%V\"",
                                 what, &s);
}


static ngx_int_t
ngx_http_credit_root(ngx_http_credit_yaml_t *y, yaml_node_t *root,
    ngx_http_credit_matrix_t *m)
{
    int64_t       version;
    ngx_str_t     s;
    yaml_node_item_t  *item;
    yaml_node_t  *f[NGX_HTTP_CREDIT_MAX_FIELDS];

    if (ngx_http_credit_fields(y, root, ngx_http_credit_root_fields, f,
                               "the matrix")
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (f[0] == NULL) {
        return ngx_http_credit_error(y, root, "\"version\" is missing");
    }

    if (ngx_http_credit_integer(y, f[0], &version, 0, "\"version\"")
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (version != 1) {
        return ngx_http_credit_error(y, f[0], "unsupported version %L, "
                                     "only 1 is known", version);
    }

    if (f[1]) {
        if (ngx_http_credit_scalar(y, f[1], &s, "\"unmatched\"") != NGX_OK) {
            return NGX_ERROR;
        }

        if (s.len == 4 && ngx_strncmp(s.data, "free", 4) == 0) {
            m->unmatched_free = 1;

        } else if (!(s.len == 4 && ngx_strncmp(s.data, "deny", 4) == 0)) {
            return ngx_http_credit_error(y, f[1], "\"unmatched\" must be "
                                         "\"deny\" or \"free\", not \"%V\"",
                                         &s);
        }
    }

    if (f[2] == NULL) {
        return ngx_http_credit_error(y, root, "\"routes\" is missing");
    }

    if (f[2]->type != YAML_SEQUENCE_NODE) {
        return ngx_http_credit_error(y, f[2], "\"routes\" must be a list");
    }

    for (item = f[2]->data.sequence.items.start;
         item < f[2]->data.sequence.items.top;
         item++)
    {
        if (ngx_http_credit_route(y, ngx_http_credit_node(y, *item), m)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_credit_route(ngx_http_credit_yaml_t *y, yaml_node_t *node,
    ngx_http_credit_matrix_t *m)
{
    ngx_uint_t                i;
    yaml_node_t              *f[NGX_HTTP_CREDIT_MAX_FIELDS];
    yaml_node_pair_t         *pair;
    ngx_http_credit_route_t  *rt, *routes;

    if (ngx_http_credit_fields(y, node, ngx_http_credit_route_fields, f,
                               "a route")
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    rt = ngx_array_push(&m->routes);
    if (rt == NULL) {
        return NGX_ERROR;
    }

    ngx_memzero(rt, sizeof(ngx_http_credit_route_t));

    rt->line = node->start_mark.line + 1;
    y->route = NULL;
    y->names = NULL;
    y->named = 0;

    if (f[0] == NULL) {
        return ngx_http_credit_error(y, node, "route without a \"name\"");
    }

    if (ngx_http_credit_scalar(y, f[0], &rt->name, "\"name\"") != NGX_OK) {
        return NGX_ERROR;
    }

    if (rt->name.len == 0) {
        return ngx_http_credit_error(y, f[0], "empty route name");
    }

    routes = m->routes.elts;

    for (i = 0; i < m->routes.nelts - 1; i++) {
        if (routes[i].name.len == rt->name.len
            && ngx_strncmp(routes[i].name.data, rt->name.data,
                           rt->name.len) == 0)
        {
            return ngx_http_credit_error(y, f[0], "duplicate route name "
                                         "\"%V\", first on line %ui",
                                         &rt->name, routes[i].line);
        }
    }

    /* the YAML document is freed after loading: keep our own copies */

    rt->name.data = ngx_pstrdup(y->cf->pool, &rt->name);
    if (rt->name.data == NULL) {
        return NGX_ERROR;
    }

    y->route = rt;

    if (f[1] == NULL) {
        return ngx_http_credit_error(y, node, "route without a \"match\"");
    }

    if (ngx_http_credit_match(y, f[1], rt) != NGX_OK) {
        return NGX_ERROR;
    }

    if (rt->match == NGX_HTTP_CREDIT_MATCH_REGEX) {
        m->regex = 1;
    }

    if (ngx_array_init(&rt->params, y->cf->pool, 4,
                       sizeof(ngx_http_credit_param_t))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (f[2]) {
        if (f[2]->type != YAML_MAPPING_NODE) {
            return ngx_http_credit_error(y, f[2],
                                         "\"params\" must be a mapping");
        }

        for (pair = f[2]->data.mapping.pairs.start;
             pair < f[2]->data.mapping.pairs.top;
             pair++)
        {
            if (ngx_http_credit_param(y, ngx_http_credit_node(y, pair->key),
                                      ngx_http_credit_node(y, pair->value),
                                      rt)
                != NGX_OK)
            {
                return NGX_ERROR;
            }
        }
    }

    if (f[3] == NULL) {
        return ngx_http_credit_error(y, node, "route without a \"cost\"");
    }

    return ngx_http_credit_cost(y, f[3], rt);
}


static ngx_int_t
ngx_http_credit_match(ngx_http_credit_yaml_t *y, yaml_node_t *node,
    ngx_http_credit_route_t *rt)
{
    ngx_str_t     s, *method;
    ngx_uint_t    i, k, n;
    yaml_node_item_t  *item;
    yaml_node_t  *f[NGX_HTTP_CREDIT_MAX_FIELDS], *mn;
#if (NGX_PCRE)
    ngx_regex_compile_t  rc;
    u_char               errstr[NGX_MAX_CONF_ERRSTR];
#endif

    if (ngx_http_credit_fields(y, node, ngx_http_credit_match_fields, f,
                               "\"match\"")
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (f[0]) {
        rt->methods = ngx_array_create(y->cf->pool, 2, sizeof(ngx_str_t));
        if (rt->methods == NULL) {
            return NGX_ERROR;
        }

        if (f[0]->type == YAML_SEQUENCE_NODE) {
            item = f[0]->data.sequence.items.start;
            n = f[0]->data.sequence.items.top - item;

            if (n == 0) {
                return ngx_http_credit_error(y, f[0], "empty \"method\" "
                                             "list");
            }

        } else {
            item = NULL;
            n = 1;
        }

        for (i = 0; i < n; i++) {
            mn = item ? ngx_http_credit_node(y, item[i]) : f[0];

            if (ngx_http_credit_scalar(y, mn, &s, "\"method\"") != NGX_OK) {
                return NGX_ERROR;
            }

            if (s.len == 0 || s.len > 32) {
                return ngx_http_credit_error(y, mn, "invalid method \"%V\"",
                                             &s);
            }

            for (k = 0; k < s.len; k++) {
                if (s.data[k] < 'A' || s.data[k] > 'Z') {
                    return ngx_http_credit_error(y, mn, "invalid method "
                                                 "\"%V\", methods are "
                                                 "upper case", &s);
                }
            }

            method = ngx_array_push(rt->methods);
            if (method == NULL) {
                return NGX_ERROR;
            }

            method->len = s.len;
            method->data = ngx_pstrdup(y->cf->pool, &s);
            if (method->data == NULL) {
                return NGX_ERROR;
            }
        }
    }

    n = (f[1] != NULL) + (f[2] != NULL) + (f[3] != NULL);

    if (n != 1) {
        return ngx_http_credit_error(y, node, "\"match\" needs exactly one "
                                     "of \"path\", \"prefix\" or \"regex\"");
    }

    mn = f[1] ? f[1] : (f[2] ? f[2] : f[3]);
    rt->match = f[1] ? NGX_HTTP_CREDIT_MATCH_EXACT
                     : (f[2] ? NGX_HTTP_CREDIT_MATCH_PREFIX
                             : NGX_HTTP_CREDIT_MATCH_REGEX);

    if (ngx_http_credit_scalar(y, mn, &s, "the match pattern") != NGX_OK) {
        return NGX_ERROR;
    }

    if (s.len == 0) {
        return ngx_http_credit_error(y, mn, "empty match pattern");
    }

    if (rt->match != NGX_HTTP_CREDIT_MATCH_REGEX && s.data[0] != '/') {
        return ngx_http_credit_error(y, mn, "path \"%V\" must start with "
                                     "\"/\"", &s);
    }

    /* NUL-terminated: PCRE and ngx_regex_compile()'s errors expect it */

    rt->path.len = s.len;
    rt->path.data = ngx_pnalloc(y->cf->pool, s.len + 1);
    if (rt->path.data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(rt->path.data, s.data, s.len);
    rt->path.data[s.len] = '\0';

    if (rt->match != NGX_HTTP_CREDIT_MATCH_REGEX) {
        return NGX_OK;
    }

#if (NGX_PCRE)
    ngx_memzero(&rc, sizeof(ngx_regex_compile_t));

    rc.pattern = rt->path;
    rc.pool = y->cf->pool;
    rc.err.len = NGX_MAX_CONF_ERRSTR;
    rc.err.data = errstr;

    if (ngx_regex_compile(&rc) != NGX_OK) {
        return ngx_http_credit_error(y, mn, "invalid regex \"%V\": %V",
                                     &rt->path, &rc.err);
    }

    rt->regex = rc.regex;
    rt->captures = rc.captures;

    y->names = rc.names;
    y->name_size = rc.name_size;
    y->named = rc.named_captures;

    return NGX_OK;
#else
    return ngx_http_credit_error(y, mn, "regex match needs PCRE");
#endif
}


static ngx_int_t
ngx_http_credit_param(ngx_http_credit_yaml_t *y, yaml_node_t *name,
    yaml_node_t *node, ngx_http_credit_route_t *rt)
{
    u_char                   *e;
    int64_t                   n;
    ngx_str_t                 s;
    ngx_uint_t                i, j;
    yaml_node_item_t              *item;
    yaml_node_t              *f[NGX_HTTP_CREDIT_MAX_FIELDS];
    ngx_http_credit_param_t  *p, *names;
    ngx_http_credit_value_t  *v;

    p = ngx_array_push(&rt->params);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ngx_memzero(p, sizeof(ngx_http_credit_param_t));

    if (ngx_http_credit_scalar(y, name, &s, "a parameter name") != NGX_OK) {
        return NGX_ERROR;
    }

    if (s.len == 0) {
        return ngx_http_credit_error(y, name, "empty parameter name");
    }

    p->name.len = s.len;
    p->name.data = ngx_pstrdup(y->cf->pool, &s);
    if (p->name.data == NULL) {
        return NGX_ERROR;
    }

    p->line = node->start_mark.line + 1;
    p->index = NGX_ERROR;

    if (ngx_http_credit_fields(y, node, ngx_http_credit_param_fields, f,
                               "a parameter")
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    /* from */

    if (f[0] == NULL) {
        return ngx_http_credit_error(y, node, "parameter \"%V\" has no "
                                     "\"from\"", &p->name);
    }

    if (ngx_http_credit_scalar(y, f[0], &s, "\"from\"") != NGX_OK) {
        return NGX_ERROR;
    }

    for (i = 0; ngx_http_credit_from_names[i].len; i++) {
        if (ngx_http_credit_from_names[i].len == s.len
            && ngx_strncmp(ngx_http_credit_from_names[i].data, s.data, s.len)
               == 0)
        {
            break;
        }
    }

    if (ngx_http_credit_from_names[i].len == 0) {
        return ngx_http_credit_error(y, f[0], "unknown \"from\" \"%V\" for "
                                     "parameter \"%V\", expected query, "
                                     "header, json, form, path or var",
                                     &s, &p->name);
    }

    p->from = i;

    /* key */

    if (f[1]) {
        if (ngx_http_credit_scalar(y, f[1], &s, "\"key\"") != NGX_OK) {
            return NGX_ERROR;
        }

        if (s.len == 0) {
            return ngx_http_credit_error(y, f[1], "empty \"key\"");
        }

        p->key.len = s.len;
        p->key.data = ngx_pstrdup(y->cf->pool, &s);
        if (p->key.data == NULL) {
            return NGX_ERROR;
        }

    } else {
        p->key = p->name;
    }

    /* type */

    if (f[2]) {
        if (ngx_http_credit_scalar(y, f[2], &s, "\"type\"") != NGX_OK) {
            return NGX_ERROR;
        }

        for (i = 0; ngx_http_credit_type_names[i].len; i++) {
            if (ngx_http_credit_type_names[i].len == s.len
                && ngx_strncmp(ngx_http_credit_type_names[i].data, s.data,
                               s.len) == 0)
            {
                break;
            }
        }

        if (ngx_http_credit_type_names[i].len == 0) {
            return ngx_http_credit_error(y, f[2], "unknown type \"%V\", "
                                         "expected string, integer or "
                                         "boolean", &s);
        }

        p->type = i;
    }

    /* where the value comes from, resolved now */

    switch (p->from) {

    case NGX_HTTP_CREDIT_FROM_PATH:

        if (rt->match != NGX_HTTP_CREDIT_MATCH_REGEX || y->named == 0) {
            return ngx_http_credit_error(y, f[0], "parameter \"%V\" is "
                                         "\"from: path\" but the route has "
                                         "no regex with named captures",
                                         &p->name);
        }

        for (j = 0; j < y->named; j++) {
            e = y->names + j * y->name_size;

            if (ngx_strlen(&e[2]) == p->key.len
                && ngx_strncmp(&e[2], p->key.data, p->key.len) == 0)
            {
                p->index = 2 * ((e[0] << 8) + e[1]);
                break;
            }
        }

        if (p->index == NGX_ERROR) {
            return ngx_http_credit_error(y, f[0], "the route regex has no "
                                         "named capture \"%V\"", &p->key);
        }

        break;

    case NGX_HTTP_CREDIT_FROM_VAR:

        s = p->key;
        if (s.len > 1 && s.data[0] == '$') {
            s.data++;
            s.len--;
        }

        p->index = ngx_http_get_variable_index(y->cf, &s);
        if (p->index == NGX_ERROR) {
            return NGX_ERROR;
        }

        break;

    case NGX_HTTP_CREDIT_FROM_JSON:
    case NGX_HTTP_CREDIT_FROM_FORM:

        if (++rt->body_params > NGX_HTTP_CREDIT_MAX_BODY_PARAMS) {
            return ngx_http_credit_error(y, f[0], "a route may have at most "
                                         "%d body parameters",
                                         NGX_HTTP_CREDIT_MAX_BODY_PARAMS);
        }

        rt->needs_body = 1;

        if (p->from == NGX_HTTP_CREDIT_FROM_JSON
            && ngx_http_credit_json_path(y, f[1] ? f[1] : name, p) != NGX_OK)
        {
            return NGX_ERROR;
        }

        break;

    default:
        break;
    }

    /* constraints */

    if (f[5] || f[6]) {
        if (p->type != NGX_HTTP_CREDIT_TYPE_INTEGER) {
            return ngx_http_credit_error(y, f[5] ? f[5] : f[6],
                                         "\"min\" and \"max\" need "
                                         "\"type: integer\"");
        }

        if (f[5]) {
            if (ngx_http_credit_integer(y, f[5], &n, -NGX_HTTP_CREDIT_MAX_COST,
                                        "\"min\"")
                != NGX_OK)
            {
                return NGX_ERROR;
            }

            p->min = n;
            p->has_min = 1;
        }

        if (f[6]) {
            if (ngx_http_credit_integer(y, f[6], &n, -NGX_HTTP_CREDIT_MAX_COST,
                                        "\"max\"")
                != NGX_OK)
            {
                return NGX_ERROR;
            }

            p->max = n;
            p->has_max = 1;
        }

        if (p->has_min && p->has_max && p->min > p->max) {
            return ngx_http_credit_error(y, f[6], "\"max\" is below \"min\"");
        }
    }

    if (f[4]) {
        if (f[4]->type != YAML_SEQUENCE_NODE
            || f[4]->data.sequence.items.top
               == f[4]->data.sequence.items.start)
        {
            return ngx_http_credit_error(y, f[4], "\"values\" must be a "
                                         "non-empty list");
        }

        p->values = ngx_array_create(y->cf->pool, 4,
                                     sizeof(ngx_http_credit_value_t));
        if (p->values == NULL) {
            return NGX_ERROR;
        }

        for (item = f[4]->data.sequence.items.start;
             item < f[4]->data.sequence.items.top;
             item++)
        {
            v = ngx_array_push(p->values);
            if (v == NULL) {
                return NGX_ERROR;
            }

            if (ngx_http_credit_param_value(y, ngx_http_credit_node(y, *item),
                                            p, v, 0)
                != NGX_OK)
            {
                return NGX_ERROR;
            }
        }
    }

    if (f[3]) {
        if (ngx_http_credit_param_value(y, f[3], p, &p->def, 1) != NGX_OK) {
            return NGX_ERROR;
        }

        p->has_default = 1;
    }

    /* the parameter name must be unique in the route */

    names = rt->params.elts;

    for (i = 0; i < rt->params.nelts - 1; i++) {
        if (names[i].name.len == p->name.len
            && ngx_strncmp(names[i].name.data, p->name.data, p->name.len)
               == 0)
        {
            return ngx_http_credit_error(y, name, "duplicate parameter "
                                         "\"%V\"", &p->name);
        }
    }

    return NGX_OK;
}


/* "options.size" -> options, size; "images.0.size": 0 is also an index */

static ngx_int_t
ngx_http_credit_json_path(ngx_http_credit_yaml_t *y, yaml_node_t *node,
    ngx_http_credit_param_t *p)
{
    u_char                     *s, *last, *dot;
    ngx_http_credit_segment_t  *seg;

    p->path = ngx_array_create(y->cf->pool, 2,
                               sizeof(ngx_http_credit_segment_t));
    if (p->path == NULL) {
        return NGX_ERROR;
    }

    s = p->key.data;
    last = s + p->key.len;

    for ( ;; ) {
        dot = ngx_strlchr(s, last, '.');
        if (dot == NULL) {
            dot = last;
        }

        if (dot == s) {
            return ngx_http_credit_error(y, node, "invalid JSON key \"%V\": "
                                         "empty step", &p->key);
        }

        if (p->path->nelts == NGX_HTTP_CREDIT_MAX_JSON_DEPTH) {
            return ngx_http_credit_error(y, node, "JSON key \"%V\" is too "
                                         "deep", &p->key);
        }

        seg = ngx_array_push(p->path);
        if (seg == NULL) {
            return NGX_ERROR;
        }

        seg->name.data = s;
        seg->name.len = dot - s;
        seg->index = (seg->name.len < 10)
                     ? ngx_atoi(seg->name.data, seg->name.len) : NGX_ERROR;

        if (dot == last) {
            break;
        }

        s = dot + 1;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_credit_param_value(ngx_http_credit_yaml_t *y, yaml_node_t *node,
    ngx_http_credit_param_t *p, ngx_http_credit_value_t *v, ngx_uint_t check)
{
    ngx_int_t  rc;
    ngx_str_t  s, detail;

    if (ngx_http_credit_scalar(y, node, &s, "a parameter value") != NGX_OK) {
        return NGX_ERROR;
    }

    rc = ngx_http_credit_parse_value(y->cf->pool, p, &s, v, &detail);

    if (rc == NGX_DECLINED) {
        return ngx_http_credit_error(y, node, "parameter \"%V\": %V",
                                     &p->name, &detail);
    }

    if (rc != NGX_OK) {
        return NGX_ERROR;
    }

    if (v->str.data == s.data) {
        v->str.data = ngx_pstrdup(y->cf->pool, &s);
        if (v->str.data == NULL) {
            return NGX_ERROR;
        }
    }

    if (!check) {
        return NGX_OK;
    }

    rc = ngx_http_credit_check_value(y->cf->pool, p, v, &detail);

    if (rc == NGX_DECLINED) {
        return ngx_http_credit_error(y, node, "default of parameter \"%V\": "
                                     "%V", &p->name, &detail);
    }

    return rc;
}


static ngx_int_t
ngx_http_credit_cost(ngx_http_credit_yaml_t *y, yaml_node_t *node,
    ngx_http_credit_route_t *rt)
{
    ngx_int_t     by;
    yaml_node_t  *f[NGX_HTTP_CREDIT_MAX_FIELDS];

    rt->cost.by = -1;

    if (node->type == YAML_SCALAR_NODE) {
        return ngx_http_credit_integer(y, node, &rt->cost.base, 0,
                                       "\"cost\"");
    }

    if (ngx_http_credit_fields(y, node, ngx_http_credit_cost_fields, f,
                               "\"cost\"")
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if ((f[0] != NULL) == (f[1] != NULL)) {
        return ngx_http_credit_error(y, node, "\"cost\" needs exactly one "
                                     "of \"base\" or \"by\"");
    }

    if (f[0]) {
        if (f[2] || f[3]) {
            return ngx_http_credit_error(y, f[2] ? f[2] : f[3],
                                         "\"table\" and \"tiers\" go with "
                                         "\"by\", not \"base\"");
        }

        if (ngx_http_credit_integer(y, f[0], &rt->cost.base, 0, "\"base\"")
            != NGX_OK)
        {
            return NGX_ERROR;
        }

    } else {
        if ((f[2] != NULL) == (f[3] != NULL)) {
            return ngx_http_credit_error(y, f[1], "\"by\" needs exactly one "
                                         "of \"table\" or \"tiers\"");
        }

        if (f[1]->type == YAML_SEQUENCE_NODE) {
            if (f[3]) {
                return ngx_http_credit_error(y, f[3], "\"tiers\" need one "
                                             "\"by\" parameter, not a list");
            }

            if (ngx_http_credit_cost_grid(y, f[1], f[2], rt) != NGX_OK) {
                return NGX_ERROR;
            }

            goto times;
        }

        by = ngx_http_credit_param_ref(y, f[1], f[3]
                                       ? NGX_HTTP_CREDIT_TYPE_INTEGER
                                       : NGX_CONF_UNSET_UINT,
                                       "\"by\"");
        if (by == NGX_ERROR) {
            return NGX_ERROR;
        }

        rt->cost.by = by;

        if (f[2]) {
            if (ngx_http_credit_cost_table(y, f[2], rt) != NGX_OK) {
                return NGX_ERROR;
            }

        } else if (ngx_http_credit_cost_tiers(y, f[3], rt) != NGX_OK) {
            return NGX_ERROR;
        }
    }

times:

    if (f[4]
        && ngx_http_credit_param_list(y, f[4], NGX_HTTP_CREDIT_TYPE_INTEGER,
                                      "\"times\"", &rt->cost.times)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (f[5] && ngx_http_credit_cost_add(y, f[5], rt) != NGX_OK) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_credit_cost_table(ngx_http_credit_yaml_t *y, yaml_node_t *node,
    ngx_http_credit_route_t *rt)
{
    ngx_uint_t                i, j, found;
    yaml_node_pair_t         *pair;
    ngx_http_credit_param_t  *p;
    ngx_http_credit_value_t  *v;
    ngx_http_credit_entry_t  *e, *entries;

    if (node->type != YAML_MAPPING_NODE
        || node->data.mapping.pairs.top == node->data.mapping.pairs.start)
    {
        return ngx_http_credit_error(y, node, "\"table\" must be a "
                                     "non-empty mapping");
    }

    p = (ngx_http_credit_param_t *) rt->params.elts + rt->cost.by;

    rt->cost.table = ngx_array_create(y->cf->pool, 4,
                                      sizeof(ngx_http_credit_entry_t));
    if (rt->cost.table == NULL) {
        return NGX_ERROR;
    }

    for (pair = node->data.mapping.pairs.start;
         pair < node->data.mapping.pairs.top;
         pair++)
    {
        e = ngx_array_push(rt->cost.table);
        if (e == NULL) {
            return NGX_ERROR;
        }

        if (ngx_http_credit_param_value(y, ngx_http_credit_node(y, pair->key),
                                        p, &e->value, 0)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        if (ngx_http_credit_integer(y, ngx_http_credit_node(y, pair->value),
                                    &e->cost, 0, "a table cost")
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        entries = rt->cost.table->elts;

        for (i = 0; i < rt->cost.table->nelts - 1; i++) {
            if (entries[i].value.str.len == e->value.str.len
                && ngx_strncmp(entries[i].value.str.data, e->value.str.data,
                               e->value.str.len) == 0)
            {
                return ngx_http_credit_error(y,
                                      ngx_http_credit_node(y, pair->key),
                                      "duplicate table entry \"%V\"",
                                      &e->value.str);
            }
        }

        if (p->values == NULL) {
            continue;
        }

        v = p->values->elts;

        for (j = 0; j < p->values->nelts; j++) {
            if (v[j].str.len == e->value.str.len
                && ngx_strncmp(v[j].str.data, e->value.str.data,
                               e->value.str.len) == 0)
            {
                break;
            }
        }

        if (j == p->values->nelts) {
            return ngx_http_credit_error(y, ngx_http_credit_node(y, pair->key),
                                         "table entry \"%V\" is not one of "
                                         "the values of parameter \"%V\"",
                                         &e->value.str, &p->name);
        }
    }

    /* every declared value must have a price */

    if (p->values) {
        v = p->values->elts;
        entries = rt->cost.table->elts;

        for (j = 0; j < p->values->nelts; j++) {
            found = 0;

            for (i = 0; i < rt->cost.table->nelts; i++) {
                if (entries[i].value.str.len == v[j].str.len
                    && ngx_strncmp(entries[i].value.str.data, v[j].str.data,
                                   v[j].str.len) == 0)
                {
                    found = 1;
                    break;
                }
            }

            if (!found) {
                return ngx_http_credit_error(y, node, "the table has no "
                                             "price for \"%V\", a value of "
                                             "parameter \"%V\"", &v[j].str,
                                             &p->name);
            }
        }
    }

    if (p->has_default) {
        entries = rt->cost.table->elts;

        for (i = 0; i < rt->cost.table->nelts; i++) {
            if (entries[i].value.str.len == p->def.str.len
                && ngx_strncmp(entries[i].value.str.data, p->def.str.data,
                               p->def.str.len) == 0)
            {
                return NGX_OK;
            }
        }

        return ngx_http_credit_error(y, node, "the table has no price for "
                                     "\"%V\", the default of parameter "
                                     "\"%V\"", &p->def.str, &p->name);
    }

    return NGX_OK;
}


/*
 * by: [quality, size] with table keys "hd,1024x1024": one price per
 * combination; when every parameter declares its values, every
 * combination must have a price.
 */

static ngx_int_t
ngx_http_credit_cost_grid(ngx_http_credit_yaml_t *y, yaml_node_t *by,
    yaml_node_t *node, ngx_http_credit_route_t *rt)
{
    u_char                   *s, *first, *last, *comma, *d;
    size_t                    len;
    ngx_int_t                 n, rc;
    ngx_str_t                 part, detail;
    ngx_uint_t                i, k, nby, combos, c, *idx;
    yaml_node_t              *key;
    yaml_node_pair_t         *pair;
    ngx_http_credit_param_t  *p;
    ngx_http_credit_value_t   v, *vals;
    ngx_http_credit_entry_t  *e, *entries;
    u_char                    buf[1024];

    nby = by->data.sequence.items.top - by->data.sequence.items.start;

    if (nby < 2 || nby > 4) {
        return ngx_http_credit_error(y, by, "a \"by\" list names 2 to 4 "
                                     "parameters");
    }

    if (ngx_http_credit_param_list(y, by, NGX_CONF_UNSET_UINT, "\"by\"",
                                   &rt->cost.grid)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    rt->cost.by = *(ngx_uint_t *) rt->cost.grid->elts;
    idx = rt->cost.grid->elts;
    p = rt->params.elts;

    if (node->type != YAML_MAPPING_NODE
        || node->data.mapping.pairs.top == node->data.mapping.pairs.start)
    {
        return ngx_http_credit_error(y, node, "\"table\" must be a "
                                     "non-empty mapping");
    }

    rt->cost.table = ngx_array_create(y->cf->pool, 8,
                                      sizeof(ngx_http_credit_entry_t));
    if (rt->cost.table == NULL) {
        return NGX_ERROR;
    }

    for (pair = node->data.mapping.pairs.start;
         pair < node->data.mapping.pairs.top;
         pair++)
    {
        key = ngx_http_credit_node(y, pair->key);

        if (ngx_http_credit_scalar(y, key, &part, "a table key") != NGX_OK) {
            return NGX_ERROR;
        }

        first = part.data;
        s = first;
        last = s + part.len;
        d = buf;

        /*
         * each comma-separated part is a value of its parameter, and
         * there are exactly as many parts as parameters: no value of a
         * grid has a comma in it (a request's with one is priced by none)
         */

        for (k = 0; k < nby; k++) {
            comma = ngx_strlchr(s, last, ',');

            if ((k + 1 < nby) != (comma != NULL)) {
                return ngx_http_credit_error(y, key, "table key \"%*s\" "
                                             "needs %ui comma-separated "
                                             "values", last - first, first,
                                             nby);
            }

            if (comma == NULL) {
                comma = last;
            }

            part.data = s;
            part.len = comma - s;

            rc = ngx_http_credit_parse_value(y->cf->pool, &p[idx[k]],
                                             &part, &v, &detail);

            if (rc == NGX_OK && p[idx[k]].values) {
                rc = ngx_http_credit_check_value(y->cf->pool, &p[idx[k]],
                                                 &v, &detail);
            }

            if (rc == NGX_DECLINED) {
                return ngx_http_credit_error(y, key, "table key part \"%V\" "
                                             "of parameter \"%V\": %V",
                                             &part, &p[idx[k]].name,
                                             &detail);
            }

            if (rc != NGX_OK) {
                return NGX_ERROR;
            }

            if ((size_t) (buf + sizeof(buf) - d) < v.str.len + 1) {
                return ngx_http_credit_error(y, key, "table key too long");
            }

            if (k) {
                *d++ = ',';
            }

            d = ngx_cpymem(d, v.str.data, v.str.len);
            s = comma + 1;
        }

        e = ngx_array_push(rt->cost.table);
        if (e == NULL) {
            return NGX_ERROR;
        }

        len = d - buf;
        e->value.str.len = len;
        e->value.str.data = ngx_pnalloc(y->cf->pool, len);
        if (e->value.str.data == NULL) {
            return NGX_ERROR;
        }

        ngx_memcpy(e->value.str.data, buf, len);
        e->value.num = 0;

        if (ngx_http_credit_integer(y, ngx_http_credit_node(y, pair->value),
                                    &e->cost, 0, "a table cost")
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        entries = rt->cost.table->elts;

        for (i = 0; i < rt->cost.table->nelts - 1; i++) {
            if (entries[i].value.str.len == len
                && ngx_strncmp(entries[i].value.str.data, buf, len) == 0)
            {
                return ngx_http_credit_error(y, key, "duplicate table entry "
                                             "\"%*s\"", len, buf);
            }
        }
    }

    /* every combination of declared values needs a price */

    combos = 1;

    for (k = 0; k < nby; k++) {
        if (p[idx[k]].values == NULL) {
            return NGX_OK;
        }

        combos *= p[idx[k]].values->nelts;
    }

    if (combos > 65536) {
        return NGX_OK;
    }

    entries = rt->cost.table->elts;

    for (c = 0; c < combos; c++) {
        d = buf;
        n = c;

        for (k = 0; k < nby; k++) {
            vals = p[idx[k]].values->elts;
            v = vals[n % p[idx[k]].values->nelts];
            n /= p[idx[k]].values->nelts;

            if ((size_t) (buf + sizeof(buf) - d) < v.str.len + 1) {
                return NGX_OK;
            }

            if (k) {
                *d++ = ',';
            }

            d = ngx_cpymem(d, v.str.data, v.str.len);
        }

        for (i = 0; i < rt->cost.table->nelts; i++) {
            if (entries[i].value.str.len == (size_t) (d - buf)
                && ngx_strncmp(entries[i].value.str.data, buf, d - buf) == 0)
            {
                break;
            }
        }

        if (i == rt->cost.table->nelts) {
            return ngx_http_credit_error(y, node, "the table has no price "
                                         "for \"%*s\"", d - buf, buf);
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_credit_cost_tiers(ngx_http_credit_yaml_t *y, yaml_node_t *node,
    ngx_http_credit_route_t *rt)
{
    yaml_node_item_t             *item;
    yaml_node_t             *f[NGX_HTTP_CREDIT_MAX_FIELDS], *tn;
    ngx_http_credit_tier_t  *t, *prev;

    if (node->type != YAML_SEQUENCE_NODE
        || node->data.sequence.items.top == node->data.sequence.items.start)
    {
        return ngx_http_credit_error(y, node, "\"tiers\" must be a "
                                     "non-empty list");
    }

    rt->cost.tiers = ngx_array_create(y->cf->pool, 4,
                                      sizeof(ngx_http_credit_tier_t));
    if (rt->cost.tiers == NULL) {
        return NGX_ERROR;
    }

    prev = NULL;

    for (item = node->data.sequence.items.start;
         item < node->data.sequence.items.top;
         item++)
    {
        tn = ngx_http_credit_node(y, *item);

        if (ngx_http_credit_fields(y, tn, ngx_http_credit_tier_fields, f,
                                   "a tier")
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        if (prev && prev->open) {
            return ngx_http_credit_error(y, tn, "only the last tier may "
                                         "omit \"upto\"");
        }

        t = ngx_array_push(rt->cost.tiers);
        if (t == NULL) {
            return NGX_ERROR;
        }

        ngx_memzero(t, sizeof(ngx_http_credit_tier_t));

        if (f[1] == NULL) {
            return ngx_http_credit_error(y, tn, "tier without a \"cost\"");
        }

        if (ngx_http_credit_integer(y, f[1], &t->cost, 0, "a tier cost")
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        if (f[0] == NULL) {
            t->open = 1;

        } else {
            if (ngx_http_credit_integer(y, f[0], &t->upto,
                                        -NGX_HTTP_CREDIT_MAX_COST, "\"upto\"")
                != NGX_OK)
            {
                return NGX_ERROR;
            }

            if (prev && t->upto <= prev->upto) {
                return ngx_http_credit_error(y, f[0], "tiers must be in "
                                             "increasing \"upto\" order");
            }
        }

        prev = t;
    }

    return NGX_OK;
}


/* a list of parameter names ("times", "by: [a, b]") into their indexes */

static ngx_int_t
ngx_http_credit_param_list(ngx_http_credit_yaml_t *y, yaml_node_t *node,
    ngx_uint_t type, const char *what, ngx_array_t **list)
{
    ngx_int_t          n;
    ngx_uint_t        *idx;
    yaml_node_item_t  *item;

    if (node->type != YAML_SEQUENCE_NODE) {
        return ngx_http_credit_error(y, node, "%s must be a list of "
                                     "parameter names", what);
    }

    *list = ngx_array_create(y->cf->pool, 2, sizeof(ngx_uint_t));
    if (*list == NULL) {
        return NGX_ERROR;
    }

    for (item = node->data.sequence.items.start;
         item < node->data.sequence.items.top;
         item++)
    {
        n = ngx_http_credit_param_ref(y, ngx_http_credit_node(y, *item),
                                      type, what);
        if (n == NGX_ERROR) {
            return NGX_ERROR;
        }

        idx = ngx_array_push(*list);
        if (idx == NULL) {
            return NGX_ERROR;
        }

        *idx = n;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_credit_cost_add(ngx_http_credit_yaml_t *y, yaml_node_t *node,
    ngx_http_credit_route_t *rt)
{
    ngx_int_t               n;
    yaml_node_pair_t       *pair;
    ngx_http_credit_add_t  *a;

    if (node->type != YAML_MAPPING_NODE) {
        return ngx_http_credit_error(y, node, "\"add\" must be a mapping of "
                                     "boolean parameters to credits");
    }

    rt->cost.add = ngx_array_create(y->cf->pool, 2,
                                    sizeof(ngx_http_credit_add_t));
    if (rt->cost.add == NULL) {
        return NGX_ERROR;
    }

    for (pair = node->data.mapping.pairs.start;
         pair < node->data.mapping.pairs.top;
         pair++)
    {
        n = ngx_http_credit_param_ref(y, ngx_http_credit_node(y, pair->key),
                                      NGX_HTTP_CREDIT_TYPE_BOOLEAN,
                                      "\"add\"");
        if (n == NGX_ERROR) {
            return NGX_ERROR;
        }

        a = ngx_array_push(rt->cost.add);
        if (a == NULL) {
            return NGX_ERROR;
        }

        a->param = n;

        if (ngx_http_credit_integer(y, ngx_http_credit_node(y, pair->value),
                                    &a->amount, 0, "an \"add\" amount")
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* a parameter named in "by", "times" or "add"; type is checked if set */

static ngx_int_t
ngx_http_credit_param_ref(ngx_http_credit_yaml_t *y, yaml_node_t *node,
    ngx_uint_t type, const char *what)
{
    ngx_str_t                 s;
    ngx_uint_t                i;
    ngx_http_credit_param_t  *p;

    if (ngx_http_credit_scalar(y, node, &s, what) != NGX_OK) {
        return NGX_ERROR;
    }

    p = y->route->params.elts;

    for (i = 0; i < y->route->params.nelts; i++) {
        if (p[i].name.len == s.len
            && ngx_strncmp(p[i].name.data, s.data, s.len) == 0)
        {
            break;
        }
    }

    if (i == y->route->params.nelts) {
        ngx_http_credit_error(y, node, "%s names \"%V\", which is not a "
                              "declared parameter", what, &s);
        return NGX_ERROR;
    }

    if (type != NGX_CONF_UNSET_UINT && p[i].type != type) {
        ngx_http_credit_error(y, node, "%s needs parameter \"%V\" to be "
                              "\"type: %V\"", what, &s,
                              &ngx_http_credit_type_names[type]);
        return NGX_ERROR;
    }

    return i;
}
