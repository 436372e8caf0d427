#include <stdlib.h>
#include <sysexits.h>

#include "demo.h"

static void *enough(void *p)
{
    if (p == NULL) {
        fputs("rollout-demo: out of memory\n", stderr);
        exit(EX_OSERR);
    }
    return p;
}

void *demo_xmalloc(size_t n)
{
    return enough(malloc(n ? n : 1));
}

void *demo_xcalloc(size_t count, size_t n)
{
    return enough(calloc(count ? count : 1, n ? n : 1));
}

void *demo_xrealloc(void *p, size_t n)
{
    return enough(realloc(p, n ? n : 1));
}

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void demo_rng_seed(struct demo_rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t demo_rng_next(struct demo_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint32_t demo_rng_below(struct demo_rng *r, uint32_t n)
{
    /* the top 32 bits scaled: bias below 2^-32 per draw, fine for demo data */
    return (uint32_t)(((demo_rng_next(r) >> 32) * (uint64_t)n) >> 32);
}

double demo_rng_unit(struct demo_rng *r)
{
    return (double)(demo_rng_next(r) >> 11) * 0x1.0p-53;
}
