
/*
 * ngx_http_credit_module: the balance cache, in shared memory.
 *
 * For recently charged accounts the workers of one nginx share the last
 * balance they saw in memcached and its cas token.  A charge decides from
 * it and writes with a compare-and-swap at once: one round trip instead of
 * gets + cas.  The cache is only ever a hint: memcached's cas rejects a
 * stale token (another worker or another nginx wrote since), and then the
 * charge reads afresh.  A refusal is never decided from the cache.
 *
 * cas tokens restart when memcached restarts, and two servers' tokens
 * are unrelated numbers that may coincide, so every entry carries the id
 * of the memcached instance it was learnt from (the server's name, its pid
 * and start time, read with "stats" on every new connection), and a worker
 * only trusts entries of the instance its own connection talks to.
 */


#include "ngx_http_credit_module.h"


/*
 * A set-associative table rather than the rbtree nginx's own zones use or
 * a chained hash: a lookup loads the two cache lines of one set at once
 * and nothing else.  Under load the entries are usually cold (the other
 * worker wrote them last, or they left the core's caches while the charge
 * was at memcached), so what a lookup costs is how many lines it waits
 * for one after the other: a tree walk waited for a dozen, a chained
 * table for the bucket and then the node, this table for one.
 *
 * An entry is one 64-byte slot, two slots a set.  A key is known by a
 * 64-bit hash of it, seeded at random when the zone is made, not by its
 * bytes: any key length takes the same room, and keys are never compared.
 * Two keys with the same hash would share an entry, which is as harmless
 * as any stale entry: a charge decided from the other key's balance
 * carries the other key's cas token, and memcached's tokens are unique
 * across all the items of a server, so memcached rejects the write and
 * the charge reads afresh; a refusal is never decided from the cache.
 *
 * Writers take the set's lock, held for a few instructions, and make the
 * set's version odd while they write.  Readers take no lock: they copy
 * the entry and keep the copy only if the version was even and did not
 * change meanwhile (a seqlock), so a balance is never read with another
 * write's token; one that loses that race reads again under the lock.  A
 * worker that cannot get the lock soon treats the set as empty: it is
 * only a hint.  A lock left by a worker that died holding it is taken
 * over, and the set's entries, maybe half written, are dropped.
 */

typedef struct {
    uint64_t                       tag;         /* 0: empty */
    uint64_t                       instance;
    uint64_t                       cas;
    int64_t                        plan;
    int64_t                        pack;
    time_t                         used;        /* last written */

    /* in the first slot of a set only */
    ngx_atomic_t                   lock;        /* the pid writing, or 0 */
    ngx_atomic_t                   version;     /* odd while written */
} ngx_http_credit_cache_slot_t;


#define NGX_HTTP_CREDIT_CACHE_WAYS  2


typedef struct {
    uint64_t                       sets;
    uint64_t                       seed;
    ngx_http_credit_cache_slot_t  *slots;
} ngx_http_credit_cache_sh_t;


struct ngx_http_credit_cache_s {
    ngx_http_credit_cache_sh_t    *sh;
    ngx_slab_pool_t               *shpool;
};


static ngx_http_credit_cache_slot_t *ngx_http_credit_cache_set_of(
    ngx_http_credit_cache_t *cache, u_char *key, size_t len, uint64_t *tag);
static ngx_int_t ngx_http_credit_cache_lock(ngx_http_credit_cache_slot_t *set);
static void ngx_http_credit_cache_unlock(ngx_http_credit_cache_slot_t *set);
static ngx_http_credit_cache_slot_t *ngx_http_credit_cache_way(
    ngx_http_credit_cache_slot_t *set, uint64_t tag, uint64_t instance);


ngx_http_credit_cache_t *
ngx_http_credit_cache_create(ngx_conf_t *cf)
{
    return ngx_pcalloc(cf->pool, sizeof(ngx_http_credit_cache_t));
}


ngx_int_t
ngx_http_credit_cache_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_credit_cache_t *ocache = data;

    size_t                         size;
    ngx_uint_t                     n, step;
    ngx_http_credit_cache_t       *cache;
    ngx_http_credit_cache_slot_t  *slots;

    cache = shm_zone->data;

    if (ocache) {
        /* a reload: keep what the old workers learnt */
        cache->sh = ocache->sh;
        cache->shpool = ocache->shpool;
        return NGX_OK;
    }

    cache->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        cache->sh = cache->shpool->data;
        return NGX_OK;
    }

    cache->sh = ngx_slab_alloc(cache->shpool,
                               sizeof(ngx_http_credit_cache_sh_t));
    if (cache->sh == NULL) {
        return NGX_ERROR;
    }

    /*
     * As many sets as the zone's free pages hold, in one piece (tried
     * page by page down, quietly): the slab allocator gives whole pages
     * for such sizes, so slots stay aligned to cache lines.
     */

    size = NGX_HTTP_CREDIT_CACHE_WAYS * sizeof(ngx_http_credit_cache_slot_t);
    step = ngx_max(ngx_pagesize / size, 1);

    cache->shpool->log_nomem = 0;

    slots = NULL;

    for (n = cache->shpool->pfree * step; n >= 64; n -= step) {
        slots = ngx_slab_alloc(cache->shpool, n * size);

        if (slots) {
            break;
        }
    }

    if (slots == NULL) {
        return NGX_ERROR;
    }

    ngx_memzero(slots, n * size);

    cache->sh->sets = n;
    cache->sh->seed = (uint64_t) ngx_random() << 32 ^ ngx_random();
    cache->sh->slots = slots;

    cache->shpool->data = cache->sh;

    ngx_log_error(NGX_LOG_INFO, shm_zone->shm.log, 0,
                  "credit: the balance cache holds %ui accounts",
                  n * NGX_HTTP_CREDIT_CACHE_WAYS);

    return NGX_OK;
}


/*
 * A key's tag: 64-bit FNV-1a, then murmur3's finalizer; and its set: the
 * tag's high half scaled to the number of sets (a multiply, not a modulo).
 */

static ngx_http_credit_cache_slot_t *
ngx_http_credit_cache_set_of(ngx_http_credit_cache_t *cache, u_char *key,
    size_t len, uint64_t *tag)
{
    uint64_t  h;

    h = cache->sh->seed ^ 0xcbf29ce484222325;

    while (len--) {
        h ^= *key++;
        h *= 0x100000001b3;
    }

    h ^= h >> 33;
    h *= 0xff51afd7ed558ccd;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53;
    h ^= h >> 33;

    *tag = h ? h : 1;

    return &cache->sh->slots[((h >> 32) * cache->sh->sets >> 32)
                             * NGX_HTTP_CREDIT_CACHE_WAYS];
}


static ngx_int_t
ngx_http_credit_cache_lock(ngx_http_credit_cache_slot_t *set)
{
    ngx_uint_t          i, spins, w;
    ngx_atomic_uint_t   pid;

    spins = (ngx_ncpu > 1) ? 2048 : 1;
    pid = 0;

    for (i = 0; i < spins; i++) {
        pid = set->lock;

        if (pid == 0 && ngx_atomic_cmp_set(&set->lock, 0, ngx_pid)) {
            return NGX_OK;
        }

        ngx_cpu_pause();
    }

    /* a worker that died while it held the lock: take it over */

    if (pid == 0
        || kill((ngx_pid_t) pid, 0) != -1 || ngx_errno != NGX_ESRCH
        || !ngx_atomic_cmp_set(&set->lock, pid, ngx_pid))
    {
        return NGX_BUSY;
    }

    ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                  "credit: balance cache: took over a lock left by process "
                  "%P, which is gone; the entries it guarded are dropped",
                  (ngx_pid_t) pid);

    if ((set->version & 1) == 0) {
        set->version++;
        ngx_memory_barrier();
    }

    for (w = 0; w < NGX_HTTP_CREDIT_CACHE_WAYS; w++) {
        set[w].tag = 0;
    }

    ngx_memory_barrier();
    set->version++;

    return NGX_OK;
}


static void
ngx_http_credit_cache_unlock(ngx_http_credit_cache_slot_t *set)
{
    (void) ngx_atomic_cmp_set(&set->lock, ngx_pid, 0);
}


static ngx_http_credit_cache_slot_t *
ngx_http_credit_cache_way(ngx_http_credit_cache_slot_t *set, uint64_t tag,
    uint64_t instance)
{
    ngx_uint_t  w;

    for (w = 0; w < NGX_HTTP_CREDIT_CACHE_WAYS; w++) {
        if (set[w].tag == tag && set[w].instance == instance && set[w].cas) {
            return &set[w];
        }
    }

    return NULL;
}


/*
 * The charge will look the key up soon: its set's two lines start coming
 * now, while the request is priced, instead of stalling the lookup.
 */

void
ngx_http_credit_cache_prefetch(ngx_http_credit_cache_t *cache, u_char *key,
    size_t len)
{
#if (defined __GNUC__ || defined __clang__)
    uint64_t                       tag;
    ngx_http_credit_cache_slot_t  *set;

    set = ngx_http_credit_cache_set_of(cache, key, len, &tag);

    __builtin_prefetch(&set[0]);
    __builtin_prefetch(&set[1]);
#endif
}


/* NGX_OK: a balance and a token learnt from this memcached instance */

ngx_int_t
ngx_http_credit_cache_get(ngx_http_credit_cache_t *cache, u_char *key,
    size_t len, uint64_t instance, int64_t *plan, int64_t *pack,
    uint64_t *cas)
{
    uint64_t                       tag;
    ngx_atomic_uint_t              version;
    ngx_http_credit_cache_slot_t  *set, *s, e;

    set = ngx_http_credit_cache_set_of(cache, key, len, &tag);

    /*
     * The version and both tags are loaded at once, and an account that
     * is not there needs nothing more.
     */

    version = set->version;

    if (set[0].tag != tag && set[1].tag != tag) {
        return NGX_DECLINED;
    }

    ngx_memory_barrier();

    if ((version & 1) == 0) {
        s = ngx_http_credit_cache_way(set, tag, instance);

        if (s) {
            e = *s;
        }

        ngx_memory_barrier();

        if (set->version == version) {
            goto done;
        }
    }

    /* a write was under way: read under the lock */

    if (ngx_http_credit_cache_lock(set) != NGX_OK) {
        return NGX_DECLINED;
    }

    s = ngx_http_credit_cache_way(set, tag, instance);

    if (s) {
        e = *s;
    }

    ngx_http_credit_cache_unlock(set);

done:

    if (s == NULL) {
        return NGX_DECLINED;
    }

    *plan = e.plan;
    *pack = e.pack;
    *cas = e.cas;

    return NGX_OK;
}


/*
 * Remembers what memcached said of a key.  An older token never replaces
 * a newer one: cas values only grow on a server.  A key that is not there
 * takes an empty slot of its set, or the one written longer ago.
 */

void
ngx_http_credit_cache_set(ngx_http_credit_cache_t *cache, u_char *key,
    size_t len, uint64_t instance, int64_t plan, int64_t pack, uint64_t cas)
{
    uint64_t                       tag;
    ngx_uint_t                     w;
    ngx_http_credit_cache_slot_t  *set, *s;

    set = ngx_http_credit_cache_set_of(cache, key, len, &tag);

    if (ngx_http_credit_cache_lock(set) != NGX_OK) {
        return;
    }

    s = NULL;

    for (w = 0; w < NGX_HTTP_CREDIT_CACHE_WAYS; w++) {
        if (set[w].tag == tag) {
            s = &set[w];
            break;
        }
    }

    if (s == NULL) {
        s = &set[0];

        for (w = 0; w < NGX_HTTP_CREDIT_CACHE_WAYS; w++) {
            if (set[w].tag == 0) {
                s = &set[w];
                break;
            }

            if (set[w].used < s->used) {
                s = &set[w];
            }
        }

    } else if (s->instance == instance && s->cas > cas) {
        goto done;
    }

    set->version++;
    ngx_memory_barrier();

    s->tag = tag;
    s->instance = instance;
    s->cas = cas;
    s->plan = plan;
    s->pack = pack;
    s->used = ngx_time();

    ngx_memory_barrier();
    set->version++;

done:

    ngx_http_credit_cache_unlock(set);
}


/*
 * Forgets a key's entry if it still holds "cas" (0: whatever it holds):
 * a token that proved stale, or an item that is gone.  A newer entry
 * stored meanwhile by another worker stays.
 */

void
ngx_http_credit_cache_forget(ngx_http_credit_cache_t *cache, u_char *key,
    size_t len, uint64_t cas)
{
    uint64_t                       tag;
    ngx_uint_t                     w;
    ngx_http_credit_cache_slot_t  *set, *s;

    set = ngx_http_credit_cache_set_of(cache, key, len, &tag);

    if (set[0].tag != tag && set[1].tag != tag) {
        return;
    }

    if (ngx_http_credit_cache_lock(set) != NGX_OK) {
        return;
    }

    set->version++;
    ngx_memory_barrier();

    for (w = 0; w < NGX_HTTP_CREDIT_CACHE_WAYS; w++) {
        s = &set[w];

        if (s->tag == tag && (cas == 0 || s->cas == cas)) {
            s->tag = 0;
        }
    }

    ngx_memory_barrier();
    set->version++;

    ngx_http_credit_cache_unlock(set);
}
