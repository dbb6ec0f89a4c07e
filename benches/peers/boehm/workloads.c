/* minigo's five workloads (examples/src/workloads/NAME.rs) in C on Boehm GC, for the
   side-by-side comparison (benches/compare.sh). `workloads WORKLOAD [ARGS]` runs one with
   minigo's rules and defaults, prints the same lines as `minigo WORKLOAD [ARGS]` on stdout,
   checks its own result as the minigo version does, and prints one `peer-gc:` line on
   stderr (collections, longest and total collection time). Exit status: 0 checked out,
   1 did not, 2 usage error.

   Pointerful objects come from GC_MALLOC, pointer-free ones from GC_MALLOC_ATOMIC; where
   minigo runs goroutines this runs pthreads (created through GC_pthread_create: gc.h
   redirects pthread_create under GC_THREADS). Marker threads: GC_MARKERS=N. Build:
   cc -O2 -Wall -pthread workloads.c -lgc -lm */
#define GC_THREADS
#include <gc.h>

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef uint64_t u64;

/* ---- collection times ------------------------------------------------------------- */

/* Boehm collects with the world stopped and the allocation lock held from GC_EVENT_START
   to GC_EVENT_END (sweeping is lazy, done later by allocation), so that span is what an
   allocating thread can be held up by: the counterpart of a stop-the-world pause. The
   callback runs under the allocation lock, so these need no lock of their own; the last
   256 are kept indexed as Go's MemStats.PauseNs (cycle n at (n + 255) % 256). */
static u64 gc_start_ns, gc_count, gc_max_ns, gc_total_ns, gc_ring[256];

static u64 now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (u64)t.tv_sec * 1000000000u + (u64)t.tv_nsec;
}

static void on_collection(GC_EventType e) {
    if (e == GC_EVENT_START) {
        gc_start_ns = now_ns();
    } else if (e == GC_EVENT_END) {
        u64 d = now_ns() - gc_start_ns;
        gc_count++;
        gc_ring[(gc_count + 255) % 256] = d;
        gc_total_ns += d;
        if (d > gc_max_ns) gc_max_ns = d;
    }
}

struct gc_snapshot { u64 count, ring[256]; };

static void *take_snapshot(void *p) {
    struct gc_snapshot *s = p;
    s->count = gc_count;
    memcpy(s->ring, gc_ring, sizeof gc_ring);
    return NULL;
}

/* The figures as of now, read under the allocation lock. */
static void gc_snapshot(struct gc_snapshot *s) { GC_call_with_alloc_lock(take_snapshot, s); }

static void report_gc(void) {
    fprintf(stderr, "peer-gc: collections %" PRIu64 " pause-max-ms %.3f pause-total-ms %.3f\n",
            gc_count, gc_max_ns / 1e6, gc_total_ns / 1e6);
}

/* ---- arguments, as minigo parses them --------------------------------------------- */

static void usage_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("workloads: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

static void at_most(const char *workload, int argc, char **argv, int max) {
    if (argc > max) usage_error("%s: unexpected argument \"%s\"", workload, argv[max]);
}

/* Digits, optionally grouped with `_` or `,`, in lo..=hi. */
static u64 parse_count(const char *what, const char *s, u64 lo, u64 hi) {
    u64 n = 0;
    int digits = 0;
    for (const char *c = s; *c; c++) {
        if (*c == '_' || *c == ',') continue;
        if (*c < '0' || *c > '9') usage_error("%s: expected a whole number, got \"%s\"", what, s);
        if (n > (UINT64_MAX - (u64)(*c - '0')) / 10) usage_error("%s: \"%s\" is too large", what, s);
        n = n * 10 + (u64)(*c - '0');
        digits++;
    }
    if (!digits) usage_error("%s: expected a whole number, got \"%s\"", what, s);
    if (n < lo || n > hi)
        usage_error("%s: %" PRIu64 " is out of range (%" PRIu64 "..=%" PRIu64 ")", what, n, lo, hi);
    return n;
}

static u64 count_arg(int argc, char **argv, int i, const char *what, u64 def, u64 lo, u64 hi) {
    return i < argc ? parse_count(what, argv[i], lo, hi) : def;
}

static const struct { int shift; const char *unit; } units[] = {
    {40, "TiB"}, {30, "GiB"}, {20, "MiB"}, {10, "KiB"}, {0, "B"}, {0, ""}};

/* A byte size as GOMEMLIMIT writes it (`1GiB`, `512MiB`, `4096`). */
static u64 parse_size(const char *what, const char *s) {
    const char *end = s;
    u64 n = 0;
    while (*end >= '0' && *end <= '9') {
        if (n > (UINT64_MAX - (u64)(*end - '0')) / 10) goto bad;
        n = n * 10 + (u64)(*end++ - '0');
    }
    if (end == s) goto bad;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (!strcmp(end, units[i].unit)) {
            if (n > UINT64_MAX >> units[i].shift) goto bad;
            return n << units[i].shift;
        }
bad:
    usage_error("%s: expected a byte size such as 512MiB or 1GiB (units B, KiB, MiB, GiB, TiB), "
                "got \"%s\"", what, s);
    return 0;
}

/* A size in the unit GOMEMLIMIT would use for it, exactly. */
static const char *size_label(u64 bytes, char *buf, size_t len) {
    for (int i = 0; i < 4; i++) {
        int sh = units[i].shift;
        if (bytes >= (1ull << sh) && bytes % (1ull << sh) == 0) {
            snprintf(buf, len, "%" PRIu64 "%s", bytes >> sh, units[i].unit);
            return buf;
        }
    }
    snprintf(buf, len, "%" PRIu64, bytes);
    return buf;
}

static void *xmalloc(size_t n) {
    void *p = malloc(n);
    if (!p) {
        fprintf(stderr, "workloads: out of memory (malloc of %zu bytes)\n", n);
        exit(1);
    }
    return p;
}

static void *gc_alloc(size_t n) {
    void *p = GC_MALLOC(n);
    if (!p) {
        fprintf(stderr, "workloads: out of memory (GC_MALLOC of %zu bytes)\n", n);
        exit(1);
    }
    return p;
}

static void *gc_alloc_atomic(size_t n) {
    void *p = GC_MALLOC_ATOMIC(n);
    if (!p) {
        fprintf(stderr, "workloads: out of memory (GC_MALLOC_ATOMIC of %zu bytes)\n", n);
        exit(1);
    }
    return p;
}

static void start_thread(pthread_t *t, void *(*f)(void *), void *arg) {
    int e = pthread_create(t, NULL, f, arg);
    if (e) {
        fprintf(stderr, "workloads: cannot start a thread: %s\n", strerror(e));
        exit(1);
    }
}

static double secs(u64 ns) { return ns / 1e9; }

/* ---- binary-trees ------------------------------------------------------------------ */

enum { MIN_DEPTH = 4 };

typedef struct bt_node { struct bt_node *left, *right; } bt_node;

static bt_node *bottom_up_tree(unsigned depth) {
    bt_node *left = NULL, *right = NULL;
    if (depth > 0) {
        left = bottom_up_tree(depth - 1);
        right = bottom_up_tree(depth - 1);
    }
    bt_node *n = gc_alloc(sizeof *n);
    n->left = left;
    n->right = right;
    return n;
}

static u64 item_check(const bt_node *n) {
    return n->left && n->right ? 1 + item_check(n->left) + item_check(n->right) : 1;
}

struct bt_task { unsigned depth; u64 iterations; char line[96]; };

static void *bt_depth(void *p) {
    struct bt_task *t = p;
    u64 check = 0;
    for (u64 i = 0; i < t->iterations; i++) check += item_check(bottom_up_tree(t->depth));
    snprintf(t->line, sizeof t->line, "%" PRIu64 "\t trees of depth %u\t check: %" PRIu64,
             t->iterations, t->depth, check);
    return NULL;
}

/* Keeps what was printed, to compare with what the rules say. */
struct text { char *s; size_t len; };

static void text_add(struct text *t, const char *fmt, ...) {
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    t->s = realloc(t->s, t->len + (size_t)n + 1);
    if (!t->s) exit(1);
    memcpy(t->s + t->len, line, (size_t)n + 1);
    t->len += (size_t)n;
}

static int binary_trees(int argc, char **argv) {
    at_most("binary-trees", argc, argv, 1);
    unsigned n = (unsigned)count_arg(argc, argv, 0, "binary-trees N", 21, 0, 28);
    unsigned max_depth = n > MIN_DEPTH + 2 ? n : MIN_DEPTH + 2, stretch = max_depth + 1;
#define NODES(d) ((1ull << ((d) + 1)) - 1)
    struct text printed = {0}, want = {0};

    u64 c = item_check(bottom_up_tree(stretch));
    text_add(&printed, "stretch tree of depth %u\t check: %" PRIu64 "\n", stretch, c);
    fputs(printed.s, stdout);
    text_add(&want, "stretch tree of depth %u\t check: %llu\n", stretch, NODES(stretch));
    bt_node *long_lived = bottom_up_tree(max_depth);

    unsigned tasks = (max_depth - MIN_DEPTH) / 2 + 1;
    struct bt_task *task = xmalloc(tasks * sizeof *task);
    pthread_t *thread = xmalloc(tasks * sizeof *thread);
    for (unsigned i = 0; i < tasks; i++) {
        task[i].depth = MIN_DEPTH + 2 * i;
        task[i].iterations = 1ull << (max_depth - task[i].depth + MIN_DEPTH);
        text_add(&want, "%" PRIu64 "\t trees of depth %u\t check: %llu\n", task[i].iterations,
                 task[i].depth, task[i].iterations * NODES(task[i].depth));
        start_thread(&thread[i], bt_depth, &task[i]);
    }
    for (unsigned i = 0; i < tasks; i++) pthread_join(thread[i], NULL);
    for (unsigned i = 0; i < tasks; i++) {
        printf("%s\n", task[i].line);
        text_add(&printed, "%s\n", task[i].line);
    }
    c = item_check(long_lived);
    printf("long lived tree of depth %u\t check: %" PRIu64 "\n", max_depth, c);
    text_add(&printed, "long lived tree of depth %u\t check: %" PRIu64 "\n", max_depth, c);
    text_add(&want, "long lived tree of depth %u\t check: %llu\n", max_depth, NODES(max_depth));
#undef NODES
    if (strcmp(printed.s, want.s)) {
        fprintf(stderr, "workloads: binary-trees: output differs from the reference for N=%u:\n"
                "--- got\n%s--- want\n%s", n, printed.s, want.s);
        return 1;
    }
    return 0;
}

/* ---- gcbench ----------------------------------------------------------------------- */

enum { MIN_TREE_DEPTH = 4, ARRAY_SIZE = 500000 };

typedef struct gc_node { struct gc_node *left, *right; int32_t i, j; } gc_node;

static gc_node *new_node(gc_node *l, gc_node *r) {
    gc_node *n = gc_alloc(sizeof *n);
    n->left = l;
    n->right = r;
    return n;
}

static u64 tree_size(unsigned d) { return (1ull << (d + 1)) - 1; }

/* Top-down: children are stored into node before they are populated. */
static void populate(unsigned depth, gc_node *node) {
    if (depth == 0) return;
    node->left = new_node(NULL, NULL);
    node->right = new_node(NULL, NULL);
    populate(depth - 1, node->left);
    populate(depth - 1, node->right);
}

static gc_node *make_tree(unsigned depth) {
    if (depth == 0) return new_node(NULL, NULL);
    gc_node *l = make_tree(depth - 1);
    gc_node *r = make_tree(depth - 1);
    return new_node(l, r);
}

static u64 count(const gc_node *n) {
    if (n->left && n->right) return 1 + count(n->left) + count(n->right);
    if (!n->left && !n->right) return 1;
    return UINT64_MAX / 2;
}

static u64 msec_since(u64 t) { return (now_ns() - t) / 1000000; }

static int gcbench(int argc, char **argv) {
    at_most("gcbench", argc, argv, 1);
    unsigned d = (unsigned)count_arg(argc, argv, 0, "gcbench DEPTH", 16, MIN_TREE_DEPTH, 24);
    unsigned long_lived_depth = d, max_depth = d, stretch = d + 2;
    int failed = 0;

    printf("Garbage Collector Test\n");
    printf(" Live storage will peak at %" PRIu64 " bytes.\n\n",
           2 * (u64)sizeof(gc_node) * tree_size(long_lived_depth) + sizeof(double) * ARRAY_SIZE);
    printf(" Stretching memory with a binary tree of depth %u\n", stretch);
    u64 start = now_ns();
    u64 n = count(make_tree(stretch));
    if (n != tree_size(stretch)) {
        fprintf(stderr, "workloads: gcbench: stretch tree has %" PRIu64 " nodes\n", n);
        failed = 1;
    }

    printf(" Creating a long-lived binary tree of depth %u\n", long_lived_depth);
    gc_node *long_lived = new_node(NULL, NULL);
    populate(long_lived_depth, long_lived);

    printf(" Creating a long-lived array of %d doubles\n", ARRAY_SIZE);
    /* GC_MALLOC_ATOMIC does not clear; minigo's and Go's arrays come back zeroed. */
    double *array = gc_alloc_atomic(sizeof(double) * ARRAY_SIZE);
    memset(array, 0, sizeof(double) * ARRAY_SIZE);
    for (int i = 0; i < ARRAY_SIZE / 2; i++) array[i] = 1.0 / i;

    for (unsigned depth = MIN_TREE_DEPTH; depth <= max_depth; depth += 2) {
        u64 iters = 2 * tree_size(stretch) / tree_size(depth);
        printf("Creating %" PRIu64 " trees of depth %u\n", iters, depth);
        u64 t = now_ns();
        for (u64 i = 0; i < iters; i++) {
            gc_node *tree = new_node(NULL, NULL);
            populate(depth, tree);
            if (i == 0 && count(tree) != tree_size(depth)) {
                fprintf(stderr, "workloads: gcbench: a top-down tree of depth %u lost nodes\n", depth);
                failed = 1;
            }
        }
        printf("\tTop down construction took %" PRIu64 " msec\n", msec_since(t));
        t = now_ns();
        for (u64 i = 0; i < iters; i++) {
            gc_node *tree = make_tree(depth);
            if (i == 0 && count(tree) != tree_size(depth)) {
                fprintf(stderr, "workloads: gcbench: a bottom-up tree of depth %u lost nodes\n", depth);
                failed = 1;
            }
        }
        printf("\tBottom up construction took %" PRIu64 " msec\n", msec_since(t));
    }

    n = count(long_lived);
    if (n != tree_size(long_lived_depth)) {
        fprintf(stderr, "workloads: gcbench: the long-lived tree has %" PRIu64 " nodes, not %" PRIu64 "\n",
                n, tree_size(long_lived_depth));
        failed = 1;
    }
    for (int i = 1; i < ARRAY_SIZE; i++) {
        double want = i < ARRAY_SIZE / 2 ? 1.0 / i : 0.0;
        if (array[i] != want) {
            fprintf(stderr, "workloads: gcbench: long-lived array[%d] is %g\n", i, array[i]);
            failed = 1;
            break;
        }
    }
    printf("Completed in %" PRIu64 " msec.\n", msec_since(start));
    return failed;
}

/* ---- churn ------------------------------------------------------------------------- */

typedef struct churn_obj { u64 id, a, b, c; } churn_obj;

static void words(u64 id, u64 *a, u64 *b, u64 *c) {
    *a = id * 0x9e3779b97f4a7c15ull;
    *b = ((*a << 21) | (*a >> 43)) ^ id;
    *c = ~id;
}

static int intact(const churn_obj *o, u64 id) {
    u64 a, b, c;
    words(id, &a, &b, &c);
    return o && o->id == id && o->a == a && o->b == b && o->c == c;
}

static int churn(int argc, char **argv) {
    at_most("churn", argc, argv, 2);
    u64 count = count_arg(argc, argv, 0, "churn COUNT", 100000000, 1, 1ull << 40);
    u64 w = count_arg(argc, argv, 1, "churn WINDOW", 10000, 1, 1ull << 26);
    churn_obj **window = gc_alloc(w * sizeof *window);
    int bad = 0;
    u64 bad_id = 0, slot = 0, evicted = 0;
    u64 start = now_ns();
    for (u64 id = 0; id < count; id++) {
        churn_obj *o = gc_alloc_atomic(sizeof *o);
        o->id = id;
        words(id, &o->a, &o->b, &o->c);
        if (id >= w) {
            if (!intact(window[slot], evicted) && !bad) bad = 1, bad_id = evicted;
            evicted++;
        }
        window[slot] = o;
        if (++slot == w) slot = 0;
    }
    u64 elapsed = now_ns() - start;
    u64 alive = w < count ? w : count, survivors = 0;
    for (u64 i = 0; i < alive; i++) {
        u64 id = count - 1 - i;
        if (intact(window[id % w], id)) survivors++;
        else if (!bad) bad = 1, bad_id = id;
    }
    printf("churn: %" PRIu64 " allocations of %zu bytes, the last %" PRIu64
           " alive: %.2f ns/allocation (%.3f s)\n",
           count, sizeof(churn_obj), w, (double)elapsed / count, secs(elapsed));
    if (bad) {
        fprintf(stderr, "workloads: churn: allocation %" PRIu64 " was lost or overwritten while alive\n", bad_id);
        return 1;
    }
    if (survivors != alive) {
        fprintf(stderr, "workloads: churn: only %" PRIu64 " of the window's objects survived\n", survivors);
        return 1;
    }
    return 0;
}

/* ---- latency ----------------------------------------------------------------------- */

enum { LIST = 64, BATCH = 16 };

typedef struct lat_node { struct lat_node *next; u64 list, generation, seq; } lat_node;

/* minigo's xorshift64* (examples/src/workloads/mod.rs): the same lists in the same order. */
static u64 rng_state;

static u64 rng_below(u64 n) {
    u64 x = rng_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return x * 0x2545f4914f6cdd1dull % n;
}

static lat_node *build_list(u64 list, u64 generation) {
    lat_node *head = NULL;
    for (u64 seq = LIST; seq-- > 0;) {
        lat_node *n = gc_alloc(sizeof *n);
        *n = (lat_node){head, list, generation, seq};
        head = n;
    }
    return head;
}

/* The list's generation if it is whole and consistent, else -1. */
static int64_t check_list(const lat_node *head, u64 list) {
    if (!head) return -1;
    u64 generation = head->generation;
    const lat_node *n = head;
    for (u64 seq = 0; seq < LIST; seq++) {
        if (!n || n->list != list || n->generation != generation || n->seq != seq) return -1;
        n = n->next;
    }
    return n ? -1 : (int64_t)generation;
}

static int cmp_u64(const void *a, const void *b) {
    u64 x = *(const u64 *)a, y = *(const u64 *)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank quantile of sorted values, as minigo's. */
static u64 quantile(const u64 *sorted, size_t len, double q) {
    if (!len) return 0;
    size_t rank = (size_t)ceil(q * (double)len);
    rank = rank < 1 ? 1 : rank > len ? len : rank;
    return sorted[rank - 1];
}

static int latency(int argc, char **argv) {
    at_most("latency", argc, argv, 1);
    u64 size = argc > 0 ? parse_size("latency SIZE", argv[0]) : 1ull << 30;
    u64 node_bytes = sizeof(lat_node), min = LIST * node_bytes;
    if (size < min) usage_error("latency SIZE: at least %" PRIu64 " bytes (one list)", min);
    if (size > 1ull << 40) usage_error("latency SIZE: at most 1TiB");
    u64 lists = size / (LIST * node_bytes);
    if (!lists) lists = 1;
    lat_node **heads = gc_alloc(lists * sizeof *heads);
    char label[32];

    u64 t = now_ns();
    for (u64 i = 0; i < lists; i++) heads[i] = build_list(i, 0);
    printf("latency: built %s live in %" PRIu64 " lists of %d nodes of %" PRIu64 " bytes in %.3f s\n",
           size_label(lists * LIST * node_bytes, label, sizeof label), lists, LIST, node_bytes,
           secs(now_ns() - t));

    /* Beside the heap (minigo keeps these in a Rust Vec): plain memory the GC never scans. */
    u64 *generations = calloc(lists, sizeof *generations);
    if (!generations) exit(1);
    struct gc_snapshot before, after;
    gc_snapshot(&before);
    u64 replacements = 4 * lists, made = 0;
    size_t nstalls = 0;
    u64 *stalls = malloc((replacements / BATCH + 1) * sizeof *stalls);
    if (!stalls) exit(1);
    rng_state = 0x006c6174656e6379ull | 1;
    t = now_ns();
    u64 last = now_ns();
    while (made < replacements) {
        u64 n = replacements - made < BATCH ? replacements - made : BATCH;
        for (u64 k = 0; k < n; k++) {
            u64 i = rng_below(lists);
            generations[i]++;
            heads[i] = build_list(i, generations[i]);
            made++;
        }
        u64 now = now_ns();
        stalls[nstalls++] = now - last;
        last = now;
    }
    u64 churn_ns = now_ns() - t;
    gc_snapshot(&after);
    u64 cycles = after.count - before.count, pauses[256];
    size_t np = 0;
    for (u64 c = after.count; c > before.count && np < 256; c--) pauses[np++] = after.ring[(c + 255) % 256];
    qsort(pauses, np, sizeof pauses[0], cmp_u64);
    printf("churn: replaced %" PRIu64 " lists (%s allocated) in %.3f s, %" PRIu64 " collections\n", made,
           size_label(made * LIST * node_bytes, label, sizeof label), secs(churn_ns), cycles);
    printf("stop-the-world pauses during churn: max %.3f ms, p99 %.3f ms, median %.3f ms\n",
           (np ? pauses[np - 1] : 0) / 1e6, quantile(pauses, np, 0.99) / 1e6,
           quantile(pauses, np, 0.5) / 1e6);
    qsort(stalls, nstalls, sizeof stalls[0], cmp_u64);
    printf("mutator stalls (every %d allocations): max %.3f ms, p99 %.3f ms, median %.3f ms\n",
           BATCH * LIST, (nstalls ? stalls[nstalls - 1] : 0) / 1e6,
           quantile(stalls, nstalls, 0.99) / 1e6, quantile(stalls, nstalls, 0.5) / 1e6);
    free(stalls);

    u64 total = 0;
    for (u64 i = 0; i < lists; i++) {
        int64_t g = check_list(heads[i], i);
        if (g < 0) {
            fprintf(stderr, "workloads: latency: list %" PRIu64 " is broken\n", i);
            return 1;
        }
        if ((u64)g != generations[i]) {
            fprintf(stderr, "workloads: latency: list %" PRIu64 " is of generation %" PRId64 ", not %" PRIu64 "\n",
                    i, g, generations[i]);
            return 1;
        }
        total += (u64)g;
    }
    if (total != made) {
        fprintf(stderr, "workloads: latency: the lists' generations add up to %" PRIu64
                ", not the %" PRIu64 " replacements made\n", total, made);
        return 1;
    }
    return 0;
}

/* ---- pipeline ---------------------------------------------------------------------- */

enum { CAP = 64, PAYLOAD = 4 };

/* A bounded channel of pointers (Go's `make(chan *T, CAP)`), closable by its sender. It
   lives in uncollectable GC memory: scanned like a root, so messages waiting in its buffer
   stay alive, and never freed under a thread that still uses it. */
typedef struct chan {
    pthread_mutex_t mu;
    pthread_cond_t not_empty, not_full;
    void *buf[CAP];
    unsigned head, len;
    int closed;
} chan;

static chan *chan_new(void) {
    chan *c = GC_MALLOC_UNCOLLECTABLE(sizeof *c);
    if (!c) exit(1);
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->not_empty, NULL);
    pthread_cond_init(&c->not_full, NULL);
    return c;
}

static void chan_send(chan *c, void *v) {
    pthread_mutex_lock(&c->mu);
    while (c->len == CAP) pthread_cond_wait(&c->not_full, &c->mu);
    c->buf[(c->head + c->len++) % CAP] = v;
    pthread_cond_signal(&c->not_empty);
    pthread_mutex_unlock(&c->mu);
}

/* The next value, or NULL once the channel is closed and drained. */
static void *chan_recv(chan *c) {
    pthread_mutex_lock(&c->mu);
    while (c->len == 0 && !c->closed) pthread_cond_wait(&c->not_empty, &c->mu);
    void *v = NULL;
    if (c->len) {
        v = c->buf[c->head];
        c->buf[c->head] = NULL;
        c->head = (c->head + 1) % CAP;
        c->len--;
        pthread_cond_signal(&c->not_full);
    }
    pthread_mutex_unlock(&c->mu);
    return v;
}

static void chan_close(chan *c) {
    pthread_mutex_lock(&c->mu);
    c->closed = 1;
    pthread_cond_broadcast(&c->not_empty);
    pthread_mutex_unlock(&c->mu);
}

/* As minigo's: the payload is a separate pointer-free array with its length beside it. */
typedef struct msg { u64 id, stage; u64 *payload; size_t len; struct msg *prev; } msg;
typedef struct done { msg *msg; u64 sum; int ok; } done;

static u64 word(u64 id, u64 stage, u64 k) { return (id ^ (stage << 48)) * 0x9e3779b97f4a7c15ull ^ k; }

static msg *message(u64 id, u64 stage, msg *prev) {
    u64 *payload = gc_alloc_atomic(PAYLOAD * sizeof *payload);
    for (u64 k = 0; k < PAYLOAD; k++) payload[k] = word(id, stage, k);
    msg *m = gc_alloc(sizeof *m);
    *m = (msg){id, stage, payload, PAYLOAD, prev};
    return m;
}

/* Walks a message's chain back to the source's; 1 and the checksum if every link is right. */
static int check_chain(const msg *last, u64 stages, u64 *sum) {
    u64 id = last->id;
    const msg *m = last;
    *sum = 0;
    for (u64 s = stages + 1; s-- > 0;) {
        if (!m || m->id != id || m->stage != s || m->len != PAYLOAD) return 0;
        for (u64 k = 0; k < PAYLOAD; k++) {
            if (m->payload[k] != word(id, s, k)) return 0;
            *sum += m->payload[k];
        }
        m = m->prev;
    }
    return m == NULL;
}

struct stage_arg { chan *in, *out; u64 stage, messages; };
struct worker_arg { chan *in, *results; u64 stages; };
struct closer_arg { pthread_t *workers; u64 n; chan *results; };

static void *source(void *p) {
    struct stage_arg *a = p;
    for (u64 id = 0; id < a->messages; id++) chan_send(a->out, message(id, 0, NULL));
    chan_close(a->out);
    return NULL;
}

static void *stage(void *p) {
    struct stage_arg *a = p;
    msg *m;
    while ((m = chan_recv(a->in))) chan_send(a->out, message(m->id, a->stage, m));
    chan_close(a->out);
    return NULL;
}

static void *worker(void *p) {
    struct worker_arg *a = p;
    msg *m;
    while ((m = chan_recv(a->in))) {
        u64 sum;
        int ok = check_chain(m, a->stages, &sum);
        done *d = gc_alloc(sizeof *d);
        *d = (done){m, ok ? sum : 0, ok};
        chan_send(a->results, d);
    }
    return NULL;
}

/* Go's `wg.Wait(); close(results)` goroutine: joining the workers is the wait group. */
static void *closer(void *p) {
    struct closer_arg *a = p;
    for (u64 i = 0; i < a->n; i++) pthread_join(a->workers[i], NULL);
    chan_close(a->results);
    return NULL;
}

static int pipeline(int argc, char **argv) {
    at_most("pipeline", argc, argv, 3);
    u64 messages = count_arg(argc, argv, 0, "pipeline MESSAGES", 1000000, 1, 1ull << 40);
    u64 stages = count_arg(argc, argv, 1, "pipeline STAGES", 4, 1, 10000);
    u64 workers = count_arg(argc, argv, 2, "pipeline WORKERS", 8, 1, 10000);

    u64 start = now_ns();
    chan **chans = xmalloc((stages + 1) * sizeof *chans);
    for (u64 i = 0; i <= stages; i++) chans[i] = chan_new();
    chan *results = chan_new();

    pthread_t src, *stage_t = xmalloc(stages * sizeof *stage_t), *worker_t = xmalloc(workers * sizeof *worker_t), closer_t;
    struct stage_arg *sa = xmalloc((stages + 1) * sizeof *sa);
    sa[0] = (struct stage_arg){NULL, chans[0], 0, messages};
    start_thread(&src, source, &sa[0]);
    for (u64 s = 1; s <= stages; s++) {
        sa[s] = (struct stage_arg){chans[s - 1], chans[s], s, 0};
        start_thread(&stage_t[s - 1], stage, &sa[s]);
    }
    struct worker_arg wa = {chans[stages], results, stages};
    for (u64 i = 0; i < workers; i++) start_thread(&worker_t[i], worker, &wa);
    struct closer_arg ca = {worker_t, workers, results};
    start_thread(&closer_t, closer, &ca);

    u64 count = 0, ids = 0, sum = 0, broken = 0;
    done *d;
    while ((d = chan_recv(results))) {
        count++;
        ids += d->msg->id;
        sum += d->sum;
        broken += !d->ok;
    }
    u64 elapsed = now_ns() - start;
    printf("pipeline: %" PRIu64 " messages through %" PRIu64 " stages and %" PRIu64
           " workers in %.3f s (%.0f ns/message)\n",
           messages, stages, workers, secs(elapsed), (double)elapsed / messages);
    pthread_join(src, NULL);
    for (u64 s = 0; s < stages; s++) pthread_join(stage_t[s], NULL);
    pthread_join(closer_t, NULL);

    u64 want_sum = 0, want_ids = 0;
    for (u64 id = 0; id < messages; id++) {
        want_ids += id;
        for (u64 s = 0; s <= stages; s++)
            for (u64 k = 0; k < PAYLOAD; k++) want_sum += word(id, s, k);
    }
    if (broken) {
        fprintf(stderr, "workloads: pipeline: %" PRIu64 " messages arrived with a broken chain\n", broken);
        return 1;
    }
    if (count != messages || ids != want_ids) {
        fprintf(stderr, "workloads: pipeline: %" PRIu64 " messages arrived (id sum %" PRIu64 "), not %" PRIu64
                " (id sum %" PRIu64 ")\n", count, ids, messages, want_ids);
        return 1;
    }
    if (sum != want_sum) {
        fprintf(stderr, "workloads: pipeline: payload checksum %#" PRIx64 ", expected %#" PRIx64 "\n", sum, want_sum);
        return 1;
    }
    return 0;
}

/* ---- main -------------------------------------------------------------------------- */

static const struct {
    const char *name, *usage;
    int (*run)(int argc, char **argv);
} workloads[] = {
    {"binary-trees", "[N=21]", binary_trees},
    {"gcbench", "[DEPTH=16]", gcbench},
    {"churn", "[COUNT=100000000] [WINDOW=10000]", churn},
    {"latency", "[SIZE=1GiB]", latency},
    {"pipeline", "[MESSAGES=1000000] [STAGES=4] [WORKERS=8]", pipeline},
};

enum { NWORKLOADS = sizeof workloads / sizeof workloads[0] };

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        printf("usage: workloads WORKLOAD [ARGS]   (marker threads: GC_MARKERS=N)\n");
        for (int i = 0; i < NWORKLOADS; i++) printf("  %-13s %s\n", workloads[i].name, workloads[i].usage);
        return argc < 2 ? 2 : 0;
    }
    for (int i = 0; i < NWORKLOADS; i++) {
        if (strcmp(argv[1], workloads[i].name)) continue;
        GC_set_on_collection_event(on_collection);
        GC_INIT();
        int status = workloads[i].run(argc - 2, argv + 2);
        fflush(stdout);
        report_gc();
        return status;
    }
    fprintf(stderr, "workloads: unknown workload \"%s\"; the workloads are", argv[1]);
    for (int i = 0; i < NWORKLOADS; i++) fprintf(stderr, "%s %s", i ? "," : "", workloads[i].name);
    fputc('\n', stderr);
    return 2;
}
