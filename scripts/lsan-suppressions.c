/*
 * Linked into the AddressSanitizer build of nginx only (make check-mem).
 * nginx 1.22 caches one PCRE2 compile context in a static variable and
 * frees it from a cycle pool cleanup, which the process that daemonizes
 * never runs: a one-time allocation of nginx itself, not a leak of ours.
 */

const char *__lsan_default_suppressions(void);

const char *
__lsan_default_suppressions(void)
{
    return "leak:ngx_regex_malloc\n";
}
