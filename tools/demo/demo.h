/* rollout-demo: a deterministic demo data set for the Hessian state administration (fixed seed,
 * own PRNG, so every machine generates the same files). */
#ifndef ROLLOUT_DEMO_H
#define ROLLOUT_DEMO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define DEMO_SEED 20220309u /* the day of the talk the rollout comes from */
#define DEMO_EMPLOYEES 72000

/* xoshiro256** seeded through splitmix64: small, fast, and the same everywhere. */
struct demo_rng {
    uint64_t s[4];
};

void demo_rng_seed(struct demo_rng *r, uint64_t seed);
uint64_t demo_rng_next(struct demo_rng *r);
/* uniform in [0, n) */
uint32_t demo_rng_below(struct demo_rng *r, uint32_t n);
/* uniform in [0, 1) */
double demo_rng_unit(struct demo_rng *r);

/* Allocation that ends the program when memory runs out (nothing better to do here). */
void *demo_xmalloc(size_t n);
void *demo_xcalloc(size_t count, size_t n);
void *demo_xrealloc(void *p, size_t n);

struct demo_ressort {
    const char *code;
    const char *name;
    int employees; /* how many of the 72,000 work here */
};

struct demo_office {
    char code[32];
    char name[160];
    const char *city;
    int ressort; /* index into demo_ressorts() */
    double weight;
    int employees;
};

/* The Ressorts (the cabinet since 2024). */
const struct demo_ressort *demo_ressorts(int *count);

/* The Dienststellen with their share of the employees (always the same list). Returns a
 * new array; *count is set. */
struct demo_office *demo_offices(int *count);
/* Index of the office with that code, or -1. */
int demo_office_find(const struct demo_office *offices, int count, const char *code);

/* One CSV field, quoted when needed. */
void demo_csv_field(FILE *f, const char *s);

int demo_write_csv(const char *dir);
int demo_write_history(const char *dir, const char *employees_csv);

#endif
