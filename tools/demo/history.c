/* rollout-demo history DIR EMPLOYEES_CSV: about eight months of rollout events for the demo
 * employees, as JSON batches (DIR/0001.json, ... at most 1000 events each) for POST /v1/events.
 *
 * Every event is valid per the contract and every sequence a legal one (planned → ordered →
 * delivered → active, steps skipped, some returned or cancelled), strictly later in time per
 * employee and item, all before today. The pace differs by Ressort and item so the dashboard
 * has a story: mobile devices far along, HessenVoice behind, WLAN auto-login nearly done in
 * some Ressorts; some Ressorts speeding up (on track), others slowing down (behind).
 * Deterministic for a given day: the same seed, and times counted back from yesterday. */
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "demo.h"
#include "domain.h"

#define BATCH_MAX 1000
#define WINDOW_DAYS 240 /* about eight months */

/* How an item's rollout goes in one Ressort. */
struct pace {
    double reach; /* share of the employees with at least one event */
    double done;  /* share of those that got to active */
    int start;    /* the campaign started this many days before today */
    double trend; /* -1..1: the completion rate of the last days compared with the campaign's
                   * average is (1 - trend): below 0 speeding up (on track), above slowing down */
};

/* Indexed by Ressort (the order of demo_ressorts()) and item. */
// clang-format off
static const struct pace paces[][ITEM_COUNT] = {
    /*            mobile_device          hessen_smartphone      hessen_voice          wlan_autologin */
    /* StK   */ {{.83, .95, 240, -.1}, {.70, .90, 200, -.1}, {.42, .60, 150,  0}, {.68, .90, 180,  0}},
    /* HMdF  */ {{.77, .92, 240, -.2}, {.26, .85, 200, -.2}, {.15, .30, 120, .4}, {.97, .98, 200, .2}},
    /* HMdIS */ {{.72, .85, 240,   0}, {.48, .85, 220, -.3}, {.14, .25, 140, .5}, {.43, .80, 160, -.1}},
    /* HMdJ  */ {{.65, .80, 230,  .8}, {.22, .70, 180,  .7}, {.11, .25, 100, .6}, {.92, .95, 210, .1}},
    /* HMKB  */ {{.77, .90, 240,   0}, {.26, .80, 200,   0}, {.21, .35, 140, .3}, {.42, .85, 170,  0}},
    /* HMWK  */ {{.72, .85, 220,  .2}, {.26, .75, 190,  .2}, {.14, .30, 120, .4}, {.38, .80, 150,  0}},
    /* HMWVW */ {{.68, .85, 230,  .3}, {.31, .80, 200,  .1}, {.14, .25, 120, .5}, {.38, .80, 160,  0}},
    /* HMLU  */ {{.63, .80, 220,  .5}, {.35, .80, 200,   0}, {.10, .20, 100, .6}, {.34, .75, 150, .1}},
    /* HMFG  */ {{.77, .90, 240, -.1}, {.26, .85, 200, -.1}, {.21, .40, 140, .2}, {.51, .85, 170, -.1}},
    /* HMdS  */ {{.77, .90, 240, -.1}, {.26, .85, 200, -.1}, {.18, .35, 140, .2}, {.47, .85, 170, -.1}},
    /* HMinD */ {{.88, .98, 240, -.2}, {.75, .95, 210, -.2}, {.85, .90, 180, -.2}, {.95, .98, 200, -.2}},
    /* HMBE  */ {{.81, .92, 240,   0}, {.62, .90, 200,   0}, {.28, .50, 140, .1}, {.59, .90, 170,  0}},
};
// clang-format on
static const struct pace default_pace[ITEM_COUNT] = {
    {.80, .85, 230, 0}, {.35, .80, 200, 0}, {.20, .30, 120, .4}, {.50, .85, 160, 0}};

/* One event before it is written. */
struct ev {
    int64_t t; /* seconds since the epoch, UTC */
    uint32_t emp;
    uint8_t item, state;
    uint8_t features; /* bit 0 present, bit 1 cti, bit 2 one_number */
    uint8_t note;     /* 0: none, else 1 + index into notes */
    uint32_t device;  /* 0: none, else the device number */
    uint8_t uuid[16];
};

struct events {
    struct ev *v;
    size_t n, cap;
};

static const char *const notes[] = {
    "Übergabe in der Dienststelle",
    "Gerät per Hauspost zugestellt",
    "Termin auf Wunsch verschoben",
    "Einweisung durchgeführt",
    "Profil per MDM verteilt",
    "Nachlieferung Netzteil",
    "Rückgabe wegen Wechsel der Dienststelle",
    "Austausch wegen Defekt",
};

static const char *const notebook_models[] = {"HP EliteBook 840 G10", "Dell Latitude 5440",
                                              "Lenovo ThinkPad T14 Gen 4", "Fujitsu Lifebook U7413",
                                              "Microsoft Surface Pro 9"};
static const char *const phone_models[] = {"Samsung Galaxy A54", "Samsung Galaxy S23",
                                           "Apple iPhone 14", "Samsung Galaxy XCover6 Pro"};
/* The first eight digits of an IMEI (type allocation code), one per phone model; made up. */
static const char *const phone_tacs[] = {"35693803", "35412987", "35325811", "35098716"};

struct employee {
    char id[33];
    int ressort; /* -1: not in the demo organisation */
};

static void add_event(struct events *e, struct demo_rng *rng, int64_t t, uint32_t emp, int item,
                      int state, uint32_t device, uint8_t features)
{
    if (e->n == e->cap) {
        e->cap = e->cap ? e->cap * 2 : 65536;
        e->v = demo_xrealloc(e->v, e->cap * sizeof *e->v);
    }
    struct ev *v = &e->v[e->n++];
    memset(v, 0, sizeof *v);
    v->t = t;
    v->emp = emp;
    v->item = (uint8_t)item;
    v->state = (uint8_t)state;
    v->device = device;
    v->features = features;
    for (int i = 0; i < 16; i += 8) {
        uint64_t x = demo_rng_next(rng);
        memcpy(v->uuid + i, &x, 8);
    }
    v->uuid[6] = (uint8_t)((v->uuid[6] & 0x0F) | 0x40); /* version 4 */
    v->uuid[8] = (uint8_t)((v->uuid[8] & 0x3F) | 0x80); /* RFC 4122 variant */
    if (demo_rng_below(rng, 100) < 3) {
        uint32_t k = item == ITEM_WLAN_AUTOLOGIN ? 4 : demo_rng_below(rng, 4);
        if (state == STATE_RETURNED)
            k = 6 + demo_rng_below(rng, 2);
        v->note = (uint8_t)(k + 1);
    }
}

/* The states an employee's item goes through when it gets all the way to active. */
static int choose_path(struct demo_rng *rng, int item, int *path)
{
    uint32_t r = demo_rng_below(rng, 100);
    switch (item) {
    case ITEM_MOBILE_DEVICE:
        if (r < 90)
            return path[0] = STATE_ACTIVE, 1;
        if (r < 98)
            return path[0] = STATE_ORDERED, path[1] = STATE_ACTIVE, 2;
        path[0] = STATE_PLANNED, path[1] = STATE_ORDERED, path[2] = STATE_DELIVERED;
        path[3] = STATE_ACTIVE;
        return 4;
    case ITEM_HESSEN_SMARTPHONE:
        if (r < 70)
            return path[0] = STATE_ACTIVE, 1;
        if (r < 90)
            return path[0] = STATE_ORDERED, path[1] = STATE_ACTIVE, 2;
        path[0] = STATE_ORDERED, path[1] = STATE_DELIVERED, path[2] = STATE_ACTIVE;
        return 3;
    case ITEM_HESSEN_VOICE:
        if (r < 60) {
            path[0] = STATE_PLANNED, path[1] = STATE_ORDERED, path[2] = STATE_ACTIVE;
            return 3;
        }
        return path[0] = STATE_PLANNED, path[1] = STATE_ACTIVE, 2;
    default: /* a WLAN profile goes from planned straight to active, or is just pushed */
        if (r < 96)
            return path[0] = STATE_ACTIVE, 1;
        return path[0] = STATE_PLANNED, path[1] = STATE_ACTIVE, 2;
    }
}

/* A point in [0, 1) whose density falls (trend > 0) or rises (trend < 0) towards 1: a mixture
 * of the uniform with the minimum or the maximum of two uniforms, no libm needed. */
static double trended(struct demo_rng *rng, double trend)
{
    double u = demo_rng_unit(rng);
    double p = trend < 0 ? -trend : trend;
    if (demo_rng_unit(rng) >= p)
        return u;
    double v = demo_rng_unit(rng);
    return trend > 0 ? (u < v ? u : v) : (u > v ? u : v);
}

static int64_t at(int64_t day, struct demo_rng *rng)
{
    /* working hours, 06:00 to 15:59 UTC (07:00 to 17:59 in Hessen) */
    return day * 86400 + (int64_t)6 * 3600 + (int64_t)demo_rng_below(rng, 10 * 3600);
}

static bool has_device(int item)
{
    return item == ITEM_MOBILE_DEVICE || item == ITEM_HESSEN_SMARTPHONE;
}

/* All events of one employee and item. */
static void one_item(struct events *e, struct demo_rng *rng, uint32_t emp, int item,
                     const struct pace *p, int64_t yesterday, uint32_t *next_device)
{
    if (demo_rng_unit(rng) >= p->reach)
        return;
    int path[4] = {0}, len = choose_path(rng, item, path);
    bool done = demo_rng_unit(rng) < p->done;
    if (!done) {
        if (len == 1) /* never started beyond the plan */
            path[0] = item == ITEM_HESSEN_SMARTPHONE ? STATE_ORDERED : STATE_PLANNED;
        else
            len = 1 + (int)demo_rng_below(rng, (uint32_t)len - 1);
    }
    int64_t start = yesterday - p->start + 1;
    /* Completions follow the Ressort's pace; the unfinished are mostly recent. */
    double u = trended(rng, done ? p->trend : -0.5);
    int64_t last = start + (int64_t)((double)(yesterday - start) * u);
    int64_t day[6];
    day[len - 1] = last;
    for (int i = len - 2; i >= 0; i--)
        day[i] = day[i + 1] - 2 - (int64_t)demo_rng_below(rng, 18);
    if (day[0] < start) { /* squeeze into the campaign, one day apart at least */
        int64_t shift = start - day[0];
        for (int i = 0; i < len; i++)
            day[i] += shift;
        for (int i = 1; i < len; i++)
            if (day[i] <= day[i - 1])
                day[i] = day[i - 1] + 1;
        if (day[len - 1] > yesterday)
            return; /* no room left: this one has not started yet */
    }
    uint32_t device = 0;
    for (int i = 0; i < len; i++) {
        uint32_t dev = 0;
        uint8_t features = 0;
        if (has_device(item) && (path[i] == STATE_DELIVERED || path[i] == STATE_ACTIVE)) {
            if (device == 0)
                device = (*next_device)++;
            dev = device;
        }
        if (item == ITEM_HESSEN_VOICE && path[i] == STATE_ACTIVE)
            features = (uint8_t)(1 | 2 | (demo_rng_below(rng, 10) < 7 ? 4 : 0));
        add_event(e, rng, at(day[i], rng), emp, item, path[i], dev, features);
    }
    int64_t after = day[len - 1];
    if (done && has_device(item) && demo_rng_below(rng, 100) < 2) {
        int64_t d = after + 20 + demo_rng_below(rng, 100);
        if (d <= yesterday)
            add_event(e, rng, at(d, rng), emp, item, STATE_RETURNED, device, 0);
    } else if (!done && demo_rng_below(rng, 100) < 4) {
        int64_t d = after + 5 + demo_rng_below(rng, 25);
        if (d <= yesterday)
            add_event(e, rng, at(d, rng), emp, item, STATE_CANCELLED, 0, 0);
    }
}

static int by_time(const void *a, const void *b)
{
    const struct ev *x = a, *y = b;
    if (x->t != y->t)
        return x->t < y->t ? -1 : 1;
    if (x->emp != y->emp)
        return x->emp < y->emp ? -1 : 1;
    if (x->item != y->item)
        return x->item < y->item ? -1 : 1;
    return (x->state > y->state) - (x->state < y->state);
}

struct office_ref {
    const char *code;
    int ressort;
};

static int by_code(const void *a, const void *b)
{
    return strcmp(((const struct office_ref *)a)->code, ((const struct office_ref *)b)->code);
}

/* Reads personnel_number,dienststelle[,...] (the file `rollout-demo csv` wrote, or one like it). */
static struct employee *read_employees(const char *path, size_t *count)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "rollout-demo: cannot read %s: %s\n", path, strerror(errno));
        return NULL;
    }
    int noff;
    struct demo_office *off = demo_offices(&noff);
    struct office_ref *refs = demo_xmalloc((size_t)noff * sizeof *refs);
    for (int i = 0; i < noff; i++)
        refs[i] = (struct office_ref){off[i].code, off[i].ressort};
    qsort(refs, (size_t)noff, sizeof *refs, by_code);

    struct employee *emp = NULL;
    size_t n = 0, cap = 0;
    char *line = NULL;
    size_t lcap = 0;
    bool header = true, ok = true;
    while (getline(&line, &lcap, f) > 0) {
        if (header) {
            header = false;
            if (strncmp(line, "personnel_number,dienststelle", 29) != 0) {
                fprintf(stderr,
                        "rollout-demo: %s does not start with the header "
                        "personnel_number,dienststelle\n",
                        path);
                ok = false;
                break;
            }
            continue;
        }
        char *id = line, *dst = strchr(line, ',');
        if (dst == NULL)
            continue;
        *dst++ = '\0';
        dst[strcspn(dst, ",\r\n")] = '\0';
        if (*id == '\0' || strlen(id) > 32)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 80000;
            emp = demo_xrealloc(emp, cap * sizeof *emp);
        }
        snprintf(emp[n].id, sizeof emp[n].id, "%s", id);
        struct office_ref key = {dst, 0};
        struct office_ref *hit = bsearch(&key, refs, (size_t)noff, sizeof *refs, by_code);
        emp[n].ressort = hit ? hit->ressort : -1;
        n++;
    }
    free(line);
    free(refs);
    free(off);
    fclose(f);
    if (!ok) {
        free(emp);
        return NULL;
    }
    *count = n;
    return emp;
}

/* Base-32 digits of a device number spread over the space, so serials look random yet never
 * repeat (multiplying by an odd number is a bijection modulo 2^35). */
static void serial_suffix(uint32_t device, char out[8])
{
    static const char alphabet[] = "0123456789ABCDEFGHJKLMNPQRSTUVWX";
    uint64_t x = ((uint64_t)device * 0x2545F491ull) & ((1ull << 35) - 1);
    for (int i = 6; i >= 0; i--) {
        out[i] = alphabet[x & 31];
        x >>= 5;
    }
    out[7] = '\0';
}

static void imei_for(uint32_t device, const char *tac, char out[16])
{
    snprintf(out, 16, "%s%06u", tac, device % 1000000);
    int sum = 0;
    for (int i = 0; i < 14; i++) {
        int d = out[i] - '0';
        if (i % 2 == 1) {
            d *= 2;
            if (d > 9)
                d -= 9;
        }
        sum += d;
    }
    out[14] = (char)('0' + (10 - sum % 10) % 10);
    out[15] = '\0';
}

static json_t *event_json(const struct ev *v, const struct employee *emp)
{
    char uuid[37];
    const uint8_t *u = v->uuid;
    snprintf(uuid, sizeof uuid,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0], u[1],
             u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14],
             u[15]);
    char when[32];
    time_t t = (time_t)v->t;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s}", "event_id", uuid, "employee", emp[v->emp].id,
                          "item", item_info((enum item)v->item)->key, "state",
                          state_name((enum rollout_state)v->state), "occurred_at", when);
    if (v->device) {
        char suffix[8], serial[16];
        serial_suffix(v->device, suffix);
        if (v->item == ITEM_HESSEN_SMARTPHONE) {
            uint32_t m = v->device % 4;
            char imei[16];
            imei_for(v->device, phone_tacs[m], imei);
            snprintf(serial, sizeof serial, "R58N%s", suffix);
            json_object_set_new(o, "device",
                                json_pack("{s:s, s:s, s:s}", "serial", serial, "model",
                                          phone_models[m], "imei", imei));
        } else {
            snprintf(serial, sizeof serial, "5CG%s", suffix);
            json_object_set_new(
                o, "device",
                json_pack("{s:s, s:s}", "serial", serial, "model", notebook_models[v->device % 5]));
        }
    }
    if (v->features & 1)
        json_object_set_new(o, "features",
                            json_pack("{s:b, s:b}", "cti", (v->features & 2) != 0, "one_number",
                                      (v->features & 4) != 0));
    if (v->note)
        json_object_set_new(o, "note", json_string(notes[v->note - 1]));
    return o;
}

/* Removes NNNN.json files of an earlier run, so the directory holds exactly this history. */
static void clear_batches(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        if (len == 9 && strcmp(de->d_name + 4, ".json") == 0 &&
            strspn(de->d_name, "0123456789") == 4) {
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
            unlink(path);
        }
    }
    closedir(d);
}

static int write_batches(const char *dir, const struct events *e, const struct employee *emp)
{
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "rollout-demo: cannot create %s: %s\n", dir, strerror(errno));
        return 1;
    }
    clear_batches(dir);
    size_t files = 0;
    for (size_t start = 0; start < e->n; start += BATCH_MAX) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%04zu.json", dir, ++files);
        FILE *f = fopen(path, "w");
        if (f == NULL) {
            fprintf(stderr, "rollout-demo: cannot write %s: %s\n", path, strerror(errno));
            return 1;
        }
        fputs("[\n", f);
        size_t end = start + BATCH_MAX < e->n ? start + BATCH_MAX : e->n;
        for (size_t i = start; i < end; i++) {
            json_t *o = event_json(&e->v[i], emp);
            char *text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
            fprintf(f, "%s%s\n", text, i + 1 < end ? "," : "");
            free(text);
            json_decref(o);
        }
        fputs("]\n", f);
        if (ferror(f) | (fclose(f) != 0)) {
            fprintf(stderr, "rollout-demo: writing %s failed\n", path);
            return 1;
        }
    }
    fprintf(stderr, "rollout-demo: %zu events in %zu files in %s\n", e->n, files, dir);
    return 0;
}

int demo_write_history(const char *dir, const char *employees_csv)
{
    size_t nemp;
    struct employee *emp = read_employees(employees_csv, &nemp);
    if (emp == NULL)
        return 1;
    int64_t yesterday = (int64_t)time(NULL) / 86400 - 1;
    struct demo_rng rng;
    demo_rng_seed(&rng, DEMO_SEED ^ 0xE7E475ull);
    struct events e = {0};
    uint32_t next_device[ITEM_COUNT] = {1, 1, 1, 1};
    int nres;
    demo_ressorts(&nres);
    for (size_t i = 0; i < nemp; i++) {
        int r = emp[i].ressort;
        for (int item = 0; item < ITEM_COUNT; item++) {
            const struct pace *p = r >= 0 && r < nres && r < (int)(sizeof paces / sizeof paces[0])
                                       ? &paces[r][item]
                                       : &default_pace[item];
            one_item(&e, &rng, (uint32_t)i, item, p, yesterday, &next_device[item]);
        }
    }
    if (e.n > 1)
        qsort(e.v, e.n, sizeof *e.v, by_time);
    int rc = write_batches(dir, &e, emp);
    free(e.v);
    free(emp);
    return rc;
}
