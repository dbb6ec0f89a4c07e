/* binary-trees (Benchmarks Game rules) with Boehm GC: nodes of two pointers from
   GC_MALLOC. Usage: binary_trees N. Markers: GC_MARKERS=1 or 2. */
#include <gc.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct node { struct node *left, *right; } node;

static node *make(int d) {
    node *n = GC_MALLOC(sizeof(node));
    if (d > 0) {
        n->left = make(d - 1);
        n->right = make(d - 1);
    }
    return n;
}

static long check(node *n) {
    return n->left ? 1 + check(n->left) + check(n->right) : 1;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 10;
    int min = 4, max = n > min + 2 ? n : min + 2;
    GC_INIT();
    printf("stretch tree of depth %d\t check: %ld\n", max + 1, check(make(max + 1)));
    node *long_lived = make(max);
    for (int d = min; d <= max; d += 2) {
        long iters = 1L << (max - d + min), c = 0;
        for (long i = 0; i < iters; i++) c += check(make(d));
        printf("%ld\t trees of depth %d\t check: %ld\n", iters, d, c);
    }
    printf("long lived tree of depth %d\t check: %ld\n", max, check(long_lived));
    return 0;
}
