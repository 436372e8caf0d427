/* Event parsing and validation (daemon/core/event.c). The contract cases are data in
 * tests/unit/data/events/ (see its README): one Criterion test per file. The rest checks the
 * pieces directly: timestamps, UUIDs, the fingerprint, the error JSON. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "canonical_reference.h"
#include "event.h"

/* 2026-12-01T12:00:00Z */
#define NOW_US (1796126400LL * 1000000)

/* ------------------------------------------------------------------------------------------ */
/* Data-driven cases */

#define CASE_NAME_MAX 96
#define CASES_MAX 1024

struct event_case {
    char name[CASE_NAME_MAX]; /* "NNN-name", without extension */
};

/* The data directory: beside this source file (CMake compiles it by its absolute path), or
 * under ROLLOUT_SOURCE_DIR when that is set. */
static void data_dir(char *out, size_t size)
{
    const char *src = getenv("ROLLOUT_SOURCE_DIR");
    if (src && *src) {
        snprintf(out, size, "%s/tests/unit/data/events", src);
        return;
    }
    const char *file = __FILE__;
    const char *slash = strrchr(file, '/');
    int dirlen = slash ? (int)(slash - file) : 1;
    snprintf(out, size, "%.*s/data/events", dirlen, slash ? file : ".");
}

static int compare_cases(const void *a, const void *b)
{
    return strcmp(((const struct event_case *)a)->name, ((const struct event_case *)b)->name);
}

static bool has_suffix(const char *s, const char *suffix, size_t *stem)
{
    size_t n = strlen(s), m = strlen(suffix);
    if (n <= m || strcmp(s + n - m, suffix) != 0)
        return false;
    *stem = n - m;
    return true;
}

/* Lists the cases with a given extension, sorted. Returns the count, -1 if the directory
 * cannot be read. */
static int list_cases(const char *ext, struct event_case *out, int max)
{
    char dir[512];
    data_dir(dir, sizeof dir);
    DIR *d = opendir(dir);
    if (d == NULL)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < max) {
        size_t stem;
        if (e->d_name[0] == '.' || !has_suffix(e->d_name, ext, &stem) || stem >= CASE_NAME_MAX)
            continue;
        memcpy(out[n].name, e->d_name, stem);
        out[n].name[stem] = '\0';
        n++;
    }
    closedir(d);
    qsort(out, (size_t)n, sizeof out[0], compare_cases);
    return n;
}

static struct event_case cases[CASES_MAX];

ParameterizedTestParameters(event_data, contract_case)
{
    int n = list_cases(".json", cases, CASES_MAX);
    return cr_make_param_array(struct event_case, cases, (size_t)(n > 0 ? n : 0));
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (n == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        if (got == 0)
            break;
        n += got;
    }
    fclose(f);
    *len = n;
    return buf;
}

/* Validates one event as POST /v1/events does; a valid one's canonical text must be the
 * reference's (canonical_reference.h). */
static json_t *validate_checked(json_t *ev, struct api_error *err)
{
    char *canonical;
    json_t *v = event_validate_canonical(ev, NOW_US, &canonical, err);
    if (v) {
        char *want = canonical_reference(v);
        cr_expect(want != NULL && canonical != NULL && strcmp(canonical, want) == 0,
                  "canonical text\n  got  %s\n  want %s", canonical, want);
        free(want);
        free(canonical);
    }
    return v;
}

/* What happened to a body, in the .expect syntax. */
static void outcome(const char *body, size_t len, char *out, size_t size, char *detail,
                    size_t dsize)
{
    struct api_error err = {0};
    json_t *root = event_parse_body(body, len, &err);
    bool ok = root != NULL;
    if (ok && json_is_array(root)) {
        size_t i;
        json_t *ev;
        json_array_foreach(root, i, ev)
        {
            json_t *v = validate_checked(ev, &err);
            if (v == NULL) {
                ok = false;
                break;
            }
            json_decref(v);
        }
    } else if (ok) {
        json_t *v = validate_checked(root, &err);
        ok = v != NULL;
        if (v) {
            /* a normalised event: lower-case UUID, a 64 hex digit fingerprint */
            const char *id = json_string_value(json_object_get(v, "event_id"));
            const char *hash = json_string_value(json_object_get(v, "hash"));
            cr_expect(id != NULL && strspn(id, "0123456789abcdef-") == 36, "event_id %s", id);
            cr_expect(hash != NULL && strlen(hash) == 64 && strspn(hash, "0123456789abcdef") == 64,
                      "hash %s", hash);
            json_decref(v);
        }
    }
    json_decref(root);
    if (ok) {
        snprintf(out, size, "ok");
        detail[0] = '\0';
    } else {
        snprintf(out, size, "error %d %s %s", err.status, err.code ? err.code : "(null)",
                 err.field[0] ? err.field : "-");
        snprintf(detail, dsize, "%s", err.message);
    }
}

ParameterizedTest(struct event_case *c, event_data, contract_case)
{
    char dir[512], path[700];
    data_dir(dir, sizeof dir);

    snprintf(path, sizeof path, "%s/%s.expect", dir, c->name);
    size_t elen;
    char *expect = slurp(path, &elen);
    cr_assert_not_null(expect, "%s: cannot read %s: %s", c->name, path, strerror(errno));
    expect = realloc(expect, elen + 1);
    expect[elen] = '\0';
    expect[strcspn(expect, "\r\n")] = '\0';

    snprintf(path, sizeof path, "%s/%s.json", dir, c->name);
    size_t len;
    char *body = slurp(path, &len);
    cr_assert_not_null(body, "%s: cannot read %s: %s", c->name, path, strerror(errno));

    char got[256], detail[300];
    outcome(body, len, got, sizeof got, detail, sizeof detail);
    free(body);
    cr_expect_str_eq(got, expect, "%s: expected \"%s\", got \"%s\" (%s)", c->name, expect, got,
                     detail);
    free(expect);
}

Test(event_data, every_case_is_complete_and_there_are_enough)
{
    static struct event_case inputs[CASES_MAX], expects[CASES_MAX];
    int ni = list_cases(".json", inputs, CASES_MAX);
    int ne = list_cases(".expect", expects, CASES_MAX);
    char dir[512];
    data_dir(dir, sizeof dir);
    cr_assert_geq(ni, 0, "cannot read %s", dir);
    cr_assert_geq(ni, 40, "only %d cases in %s", ni, dir);
    cr_assert_eq(ni, ne, "%d .json files but %d .expect files in %s", ni, ne, dir);
    for (int i = 0; i < ni; i++) {
        cr_assert_str_eq(inputs[i].name, expects[i].name, "a case lacks its other file");
        cr_assert(inputs[i].name[0] >= '0' && inputs[i].name[0] <= '9' && inputs[i].name[3] == '-',
                  "%s is not named NNN-name", inputs[i].name);
        if (i > 0)
            cr_assert(strncmp(inputs[i].name, inputs[i - 1].name, 3) != 0,
                      "two cases share the number of %s", inputs[i].name);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Timestamps */

/* Parses a copy on the heap of exactly the string's size, so AddressSanitizer sees any read
 * past its end. */
static bool parse_ts(const char *text, int64_t *us)
{
    char *copy = strdup(text);
    cr_assert_not_null(copy);
    bool ok = event_parse_timestamp(copy, us);
    free(copy);
    return ok;
}

Test(timestamp, values)
{
    static const struct {
        const char *text;
        int64_t us;
    } good[] = {
        {"1970-01-01T00:00:00Z", 0},
        {"1970-01-01T00:00:01+00:00", 1000000},
        {"2026-11-20T09:30:00+01:00", 1795163400LL * 1000000},
        {"2026-11-20T08:30:00Z", 1795163400LL * 1000000},
        {"2026-11-20T03:30:00-05:00", 1795163400LL * 1000000},
        {"2026-11-20T14:00:00+05:30", 1795163400LL * 1000000},
        {"2026-11-20t08:30:00z", 1795163400LL * 1000000},
        {"2026-11-20T08:30:00.5Z", 1795163400LL * 1000000 + 500000},
        {"2026-11-20T08:30:00.000001Z", 1795163400LL * 1000000 + 1},
        {"2026-11-20T08:30:00.123456789Z", 1795163400LL * 1000000 + 123456},
        {"2024-02-29T00:00:00Z", 1709164800LL * 1000000},
        {"2000-02-29T00:00:00Z", 951782400LL * 1000000},
        {"2026-12-31T23:59:59Z", 1798761599LL * 1000000},
        {"2027-01-01T00:30:00+01:00", 1798759800LL * 1000000},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        int64_t us = -1;
        cr_expect(parse_ts(good[i].text, &us), "%s must parse", good[i].text);
        cr_expect_eq(us, good[i].us, "%s: expected %lld, got %lld", good[i].text,
                     (long long)good[i].us, (long long)us);
    }
}

Test(timestamp, rejects_what_is_not_rfc3339_with_an_offset)
{
    static const char *const bad[] = {
        "",
        "2026-11-20",
        "2026-11-20T09:30:00",  /* no offset */
        "2026-11-20T09:30Z",    /* no seconds */
        "2026-11-20 09:30:00Z", /* blank, not T */
        "2026-02-30T09:30:00Z", /* no such day */
        "2026-02-29T09:30:00Z", /* 2026 is no leap year */
        "2100-02-29T09:30:00Z", /* nor is 2100 */
        "2026-04-31T09:30:00Z",
        "2026-13-01T09:30:00Z",
        "2026-00-01T09:30:00Z",
        "2026-11-00T09:30:00Z",
        "2026-11-20T24:00:00Z",
        "2026-11-20T23:60:00Z",
        "2026-11-20T23:59:61Z",
        "2026-11-20T09:30:00.Z", /* empty fraction */
        "2026-11-20T09:30:00.1234567890Z",
        "2026-11-20T09:30:00+01", /* hours-only offset */
        "2026-11-20T09:30:00+1",
        "2026-11-20T09:30:00+0100",
        "2026-11-20T09:30:00+01:0",
        "2026-11-20T09:30:00+24:00",
        "2026-11-20T09:30:00+01:60",
        "2026-11-20T09:30:00+01:00 ",
        "2026-11-20T09:30:00ZZ",
        "2026-11-20T09:30:00.5",
        "+2026-11-20T09:30:00Z",
        "2026-1-20T09:30:00Z+01:00",
        "20.11.2026T09:30:00Z",
        "1969-12-31T23:59:59Z",
        "2026-11-20T09:30:00UTC",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t us = 0;
        cr_expect_not(parse_ts(bad[i], &us), "\"%s\" must be rejected", bad[i]);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* UUIDs */

Test(uuid, valid)
{
    static const char *const good[] = {
        "0b6f6e52-4d0e-4a57-9a43-1c3c8f3f6b1a", "0B6F6E52-4D0E-4A57-9A43-1C3C8F3F6B1A",
        "0b6F6e52-4D0e-4a57-9A43-1c3C8f3F6b1A", "00000000-0000-0000-0000-000000000000",
        "ffffffff-ffff-ffff-ffff-ffffffffffff"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        cr_expect(event_uuid_valid(good[i]), "%s is a UUID", good[i]);
}

Test(uuid, invalid)
{
    static const char *const bad[] = {
        "",
        "0b6f6e52-4d0e-4a57-9a43-1c3c8f3f6b1",   /* 35 */
        "0b6f6e52-4d0e-4a57-9a43-1c3c8f3f6b1a0", /* 37 */
        "0b6f6e524d0e4a579a431c3c8f3f6b1a",
        "0b6f6e52-4d0e-4a57-9a431-c3c8f3f6b1a",
        "0b6f6e52_4d0e_4a57_9a43_1c3c8f3f6b1a",
        "0b6f6e52-4d0e-4a57-9a43-1c3c8f3f6b1g",
        "0b6f6e52-4d0e-4a57-9a43-1c3c8f3f6b1 ",
        " b6f6e52-4d0e-4a57-9a43-1c3c8f3f6b1a",
        "{0b6f6e52-4d0e-4a57-9a43-1c3c8f3f6b1}",
        "------------------------------------",
        "0b6f6e52-4d0e-4a57-9a43-1c3c8f3f6b\xc3\xa4",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_expect_not(event_uuid_valid(bad[i]), "\"%s\" must be rejected", bad[i]);
}

/* ------------------------------------------------------------------------------------------ */
/* Normalisation and the fingerprint */

/* Validates one event given as JSON text; asserts it is valid. */
static json_t *valid(const char *text)
{
    struct api_error err = {0};
    json_t *root = event_parse_body(text, strlen(text), &err);
    cr_assert_not_null(root, "%s: %s %s", text, err.code, err.message);
    json_t *v = event_validate(root, NOW_US, &err);
    json_decref(root);
    cr_assert_not_null(v, "%s: %s %s (%s)", text, err.code, err.message, err.field);
    return v;
}

static const char *hash_of(json_t *v)
{
    const char *h = json_string_value(json_object_get(v, "hash"));
    cr_assert_not_null(h);
    return h;
}

#define EV_A                                                                                       \
    "{\"event_id\": \"0b6f6e52-4d0e-4a57-9a43-1c3c8f3f6b1a\", \"employee\": \"P0012345\", "        \
    "\"item\": \"hessen_voice\", \"state\": \"active\", "                                          \
    "\"occurred_at\": \"2026-11-20T09:30:00+01:00\", "                                             \
    "\"device\": {\"serial\": \"R58N31ABCDE\", \"model\": \"Yealink\", "                           \
    "\"imei\": \"356938035643809\"}, \"features\": {\"cti\": true, \"one_number\": false}, "       \
    "\"note\": \"handed over\"}"
/* the same event, every object's keys in another order */
#define EV_A_REORDERED                                                                             \
    "{\"note\": \"handed over\", \"features\": {\"one_number\": false, \"cti\": true}, "           \
    "\"device\": {\"imei\": \"356938035643809\", \"model\": \"Yealink\", "                         \
    "\"serial\": \"R58N31ABCDE\"}, \"occurred_at\": \"2026-11-20T09:30:00+01:00\", "               \
    "\"state\": \"active\", \"item\": \"hessen_voice\", \"employee\": \"P0012345\", "              \
    "\"event_id\": \"0b6f6e52-4d0e-4a57-9a43-1c3c8f3f6b1a\"}"

/* The fingerprint is stored with every event (request_hash) and compared when an event_id
 * comes again, so it must never change: SHA-256 of the compact, key-sorted, ASCII JSON of the
 * normalised event with occurred_at as microseconds since the epoch. The expected value was
 * computed outside C (Python's json.dumps(sort_keys=True, separators=(",", ":")) and hashlib). */
Test(fingerprint, is_the_sha256_of_the_canonical_event)
{
    json_t *v = valid("{\"event_id\": \"6F1C2A4E-8B7D-4C3A-9E21-0A5B6C7D8E9F\", "
                      "\"employee\": \"P0000001\", \"item\": \"mobile_device\", "
                      "\"state\": \"planned\", \"occurred_at\": \"2026-11-01T11:00:00+01:00\"}");
    /* {"employee":"P0000001","event_id":"6f1c2a4e-8b7d-4c3a-9e21-0a5b6c7d8e9f",
     *  "item":"mobile_device","occurred_at":1793527200000000,"state":"planned"} */
    cr_assert_str_eq(hash_of(v), "cd440f45b4ea57c56f426796c9d8a13b6eed2ef7a97f84f008d8e75a6b7682ce");
    /* and the event keeps occurred_at as it was written */
    cr_assert_str_eq(json_string_value(json_object_get(v, "occurred_at")),
                     "2026-11-01T11:00:00+01:00");
    json_decref(v);
}

/* The canonical text is put together from the event's parts (event.c); it must be what jansson
 * printed before, for every shape an event can have and every character a note or a device
 * model can hold. */
Test(fingerprint, canonical_text_is_the_jansson_form_for_every_shape)
{
    static const char *const extra[] = {
        "",
        ", \"note\": \"handed over\"",
        ", \"note\": \"\\\"quoted\\\" back\\\\slash / slash\"",
        ", \"note\": \"tab\\there\\nnew line \\u0001 \\u001f \\u007f del\"",
        ", \"note\": \"Übergabe an Frau Müller, Straße ß €\"",
        ", \"note\": \"astral \\ud83d\\ude00 and \xf0\x9f\x93\xb1 raw\"",
        ", \"note\": \"\\u2028 line separator\"",
        ", \"device\": {\"serial\": \"A/B:C.D_E-F\"}",
        ", \"device\": {\"serial\": \"S1\", \"imei\": \"356938035643809\"}",
        ", \"device\": {\"model\": \"Galaxy \\\"XCover\\\" 6 Pro ™\", \"serial\": \"S1\"}",
        ", \"device\": {\"imei\": \"356938035643809\", \"model\": \"m\", \"serial\": \"S1\"}",
        ", \"device\": null, \"features\": null, \"note\": null",
    };
    static const char *const voice[] = {
        ", \"features\": {}",
        ", \"features\": {\"one_number\": true}",
        ", \"features\": {\"cti\": false}",
        ", \"features\": {\"one_number\": false, \"cti\": true}, \"note\": \"n\"",
    };
    char text[1024];
    for (size_t i = 0; i < sizeof extra / sizeof extra[0] + sizeof voice / sizeof voice[0]; i++) {
        bool is_voice = i >= sizeof extra / sizeof extra[0];
        snprintf(text, sizeof text,
                 "{\"event_id\": \"0B6F6E52-4D0E-4A57-9A43-1C3C8F3F6B1A\", \"employee\": \"P-12_3\", "
                 "\"item\": \"%s\", \"state\": \"delivered\", "
                 "\"occurred_at\": \"2026-11-20T09:30:00.123456789-02:30\"%s}",
                 is_voice ? "hessen_voice" : "hessen_smartphone",
                 is_voice ? voice[i - sizeof extra / sizeof extra[0]] : extra[i]);
        json_error_t jerr;
        json_t *root = json_loads(text, 0, &jerr);
        cr_assert_not_null(root, "%s: %s", text, jerr.text);
        struct api_error err;
        json_t *v = validate_checked(root, &err);
        cr_expect_not_null(v, "%s: %s %s", text, err.code, err.message);
        json_decref(v);
        json_decref(root);
    }
}

Test(fingerprint, same_event_in_another_key_order_has_the_same_hash)
{
    json_t *a = valid(EV_A), *b = valid(EV_A_REORDERED);
    cr_assert_str_eq(hash_of(a), hash_of(b));
    json_decref(a);
    json_decref(b);
}

Test(fingerprint, same_event_with_whitespace_and_escapes_has_the_same_hash)
{
    json_t *a = valid(EV_A);
    json_t *b = valid("{\n  \"event_id\":\"0b6f6e52-4d0e-4a57-9a43-1c3c8f3f6b1a\",\n"
                      "  \"employee\":\"P0012345\",\"item\":\"hessen_voice\",\"state\":\"active\","
                      "\"occurred_at\":\"2026-11-20T09:30:00+01:00\",\"device\":{\"serial\":"
                      "\"R58N31ABCDE\",\"model\":\"Yealink\",\"imei\":\"356938035643809\"},"
                      "\"features\":{\"cti\":true,\"one_number\":false},"
                      "\"note\":\"handed \\u006fver\"}\n");
    cr_assert_str_eq(hash_of(a), hash_of(b));
    json_decref(a);
    json_decref(b);
}

Test(fingerprint, upper_case_uuid_is_the_same_event)
{
    json_t *a = valid(EV_A);
    json_t *b = valid("{\"event_id\": \"0B6F6E52-4D0E-4A57-9A43-1C3C8F3F6B1A\", \"employee\": "
                      "\"P0012345\", \"item\": \"hessen_voice\", \"state\": \"active\", "
                      "\"occurred_at\": \"2026-11-20T09:30:00+01:00\", \"device\": {\"serial\": "
                      "\"R58N31ABCDE\", \"model\": \"Yealink\", \"imei\": \"356938035643809\"}, "
                      "\"features\": {\"cti\": true, \"one_number\": false}, \"note\": \"handed "
                      "over\"}");
    cr_assert_str_eq(json_string_value(json_object_get(b, "event_id")),
                     "0b6f6e52-4d0e-4a57-9a43-1c3c8f3f6b1a", "the UUID is lower-cased");
    cr_assert_str_eq(hash_of(a), hash_of(b));
    json_decref(a);
    json_decref(b);
}

Test(fingerprint, explicit_nulls_are_the_same_as_absent_fields)
{
    json_t *a = valid("{\"event_id\": \"0b6f6e52-4d0e-4a57-9a43-1c3c8f3f6b1a\", \"employee\": "
                      "\"P0012345\", \"item\": \"mobile_device\", \"state\": \"planned\", "
                      "\"occurred_at\": \"2026-11-20T09:30:00+01:00\"}");
    json_t *b = valid("{\"event_id\": \"0b6f6e52-4d0e-4a57-9a43-1c3c8f3f6b1a\", \"employee\": "
                      "\"P0012345\", \"item\": \"mobile_device\", \"state\": \"planned\", "
                      "\"occurred_at\": \"2026-11-20T09:30:00+01:00\", \"device\": null, "
                      "\"note\": null, \"features\": null}");
    cr_assert_str_eq(hash_of(a), hash_of(b));
    cr_assert_null(json_object_get(b, "device"), "nulls are dropped from the normalised event");
    cr_assert_null(json_object_get(b, "note"));
    cr_assert_null(json_object_get(b, "features"));
    json_decref(a);
    json_decref(b);
}

/* Replaces the first occurrence of from in EV_A by to and returns the new event's hash. */
static char *hash_with(const char *from, const char *to)
{
    const char *base = EV_A;
    const char *at = strstr(base, from);
    cr_assert_not_null(at, "%s not in the base event", from);
    char text[2048];
    snprintf(text, sizeof text, "%.*s%s%s", (int)(at - base), base, to, at + strlen(from));
    json_t *v = valid(text);
    char *h = strdup(hash_of(v));
    json_decref(v);
    return h;
}

Test(fingerprint, a_different_value_gives_a_different_hash)
{
    static const struct {
        const char *from, *to;
    } changes[] = {
        {"0b6f6e52", "1b6f6e52"},
        {"P0012345", "P0012346"},
        {"\"state\": \"active\"", "\"state\": \"delivered\""},
        {"09:30:00+01:00", "09:30:01+01:00"},
        {"R58N31ABCDE", "R58N31ABCDF"},
        {"Yealink", "Yealink T54W"},
        {"\"cti\": true", "\"cti\": false"},
        {"handed over", "handed  over"},
        {", \"note\": \"handed over\"", ""},
        {", \"model\": \"Yealink\"", ""},
    };
    json_t *base = valid(EV_A);
    for (size_t i = 0; i < sizeof changes / sizeof changes[0]; i++) {
        char *h = hash_with(changes[i].from, changes[i].to);
        cr_expect_str_neq(h, hash_of(base), "changing %s to %s must change the hash",
                          changes[i].from, changes[i].to);
        free(h);
    }
    json_decref(base);
}

Test(normalise, keeps_known_fields_only_and_values_unchanged)
{
    json_t *v = valid(EV_A);
    static const char *const keys[] = {"event_id", "employee", "item", "state", "occurred_at",
                                       "device",   "features", "note", "hash"};
    cr_assert_eq(json_object_size(v), sizeof keys / sizeof keys[0]);
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        cr_expect_not_null(json_object_get(v, keys[i]), "%s missing", keys[i]);
    cr_expect_str_eq(json_string_value(json_object_get(v, "occurred_at")),
                     "2026-11-20T09:30:00+01:00");
    json_t *dev = json_object_get(v, "device");
    cr_expect_str_eq(json_string_value(json_object_get(dev, "serial")), "R58N31ABCDE");
    cr_expect_str_eq(json_string_value(json_object_get(dev, "imei")), "356938035643809");
    json_t *f = json_object_get(v, "features");
    cr_expect(json_is_true(json_object_get(f, "cti")));
    cr_expect(json_is_false(json_object_get(f, "one_number")));
    json_decref(v);
}

Test(normalise, validate_leaves_the_input_alone)
{
    struct api_error err = {0};
    json_t *root = event_parse_body(EV_A, strlen(EV_A), &err);
    cr_assert_not_null(root);
    char *before = json_dumps(root, JSON_SORT_KEYS);
    json_t *v = event_validate(root, NOW_US, &err);
    cr_assert_not_null(v);
    char *after = json_dumps(root, JSON_SORT_KEYS);
    cr_assert_str_eq(before, after);
    cr_assert_null(json_object_get(root, "hash"));
    free(before);
    free(after);
    json_decref(v);
    json_decref(root);
}

Test(future, the_clock_slack_is_five_minutes)
{
    struct api_error err = {0};
    json_t *ev = json_pack(
        "{s:s, s:s, s:s, s:s, s:s}", "event_id", "0b6f6e52-4d0e-4a57-9a43-1c3c8f3f6b1a", "employee",
        "P1", "item", "wlan_autologin", "state", "active", "occurred_at", "2026-12-01T12:05:00Z");
    json_t *v = event_validate(ev, NOW_US, &err);
    cr_expect_not_null(v, "exactly now + 5 min is still accepted: %s", err.message);
    json_decref(v);
    json_object_set_new(ev, "occurred_at", json_string("2026-12-01T12:05:00.000001Z"));
    v = event_validate(ev, NOW_US, &err);
    cr_expect_null(v, "now + 5 min + 1 us is in the future");
    cr_expect_str_eq(err.code, "timestamp_in_future");
    json_decref(v);
    json_decref(ev);
}

Test(event, not_an_object)
{
    struct api_error err = {0};
    json_t *n = json_integer(5);
    cr_assert_null(event_validate(n, NOW_US, &err));
    cr_assert_eq(err.status, 400);
    cr_assert_str_eq(err.code, "invalid_type");
    json_decref(n);
}

/* ------------------------------------------------------------------------------------------ */
/* The error JSON */

Test(api_error, json_shape_with_field)
{
    struct api_error err;
    api_error_set(&err, 400, "invalid_uuid", "event_id", "event_id %s is no UUID", "x");
    cr_assert_eq(err.status, 400);
    json_t *j = api_error_json(&err);
    json_t *e = json_object_get(j, "error");
    cr_assert(json_is_object(e));
    cr_assert_eq(json_object_size(j), 1);
    cr_assert_eq(json_object_size(e), 3);
    cr_assert_str_eq(json_string_value(json_object_get(e, "code")), "invalid_uuid");
    cr_assert_str_eq(json_string_value(json_object_get(e, "message")), "event_id x is no UUID");
    cr_assert_str_eq(json_string_value(json_object_get(e, "field")), "event_id");
    json_decref(j);
}

Test(api_error, field_is_null_when_not_about_a_field)
{
    struct api_error err;
    api_error_set(&err, 415, "unsupported_media_type", NULL, "send application/json");
    json_t *j = api_error_json(&err);
    json_t *e = json_object_get(j, "error");
    cr_assert(json_is_null(json_object_get(e, "field")));
    cr_assert_str_eq(json_string_value(json_object_get(e, "code")), "unsupported_media_type");
    json_decref(j);
}

Test(api_error, long_messages_are_truncated_not_overflowed)
{
    struct api_error err;
    char big[1000];
    memset(big, 'm', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    api_error_set(&err, 400, "invalid_body", "f", "%s", big);
    cr_assert_eq(strlen(err.message), sizeof err.message - 1);
}

Test(api_error, body_is_the_inner_object)
{
    struct api_error err;
    api_error_set(&err, 409, "illegal_transition", "state", "cannot go from %s to %s", "active",
                  "planned");
    json_t *body = api_error_body(&err);
    json_t *whole = api_error_json(&err);
    cr_assert(json_equal(body, json_object_get(whole, "error")));
    cr_assert_str_eq(json_string_value(json_object_get(body, "message")),
                     "cannot go from active to planned");
    json_decref(body);
    json_decref(whole);
}
