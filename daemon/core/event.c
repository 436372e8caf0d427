#include "event.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "digest.h"
#include "domain.h"

void api_error_set(struct api_error *err, int status, const char *code, const char *field,
                   const char *fmt, ...)
{
    err->status = status;
    err->code = code;
    snprintf(err->field, sizeof err->field, "%s", field ? field : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
}

json_t *api_error_body(const struct api_error *err)
{
    json_t *e = json_pack("{s:s, s:s}", "code", err->code, "message", err->message);
    json_object_set_new(e, "field", err->field[0] ? json_string(err->field) : json_null());
    return e;
}

json_t *api_error_json(const struct api_error *err)
{
    return json_pack("{s:o}", "error", api_error_body(err));
}

json_t *event_parse_body(const char *body, size_t len, struct api_error *err)
{
    if (len == 0) {
        api_error_set(err, 400, "empty_body", NULL, "the request body is empty; send one event "
                                                    "as a JSON object or a batch as an array");
        return NULL;
    }
    json_error_t jerr;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (root == NULL) {
        api_error_set(err, 400, "invalid_json", NULL, "the body is not valid JSON: %s (line %d, "
                                                      "column %d)",
                      jerr.text, jerr.line, jerr.column);
        return NULL;
    }
    if (!json_is_object(root) && !json_is_array(root)) {
        json_decref(root);
        api_error_set(err, 400, "invalid_body", NULL,
                      "the body must be one event (a JSON object) or a batch (an array)");
        return NULL;
    }
    return root;
}

bool event_uuid_valid(const char *t)
{
    static const int dash[] = {8, 13, 18, 23};
    if (strlen(t) != 36)
        return false;
    for (int i = 0, d = 0; i < 36; i++) {
        if (d < 4 && i == dash[d]) {
            if (t[i] != '-')
                return false;
            d++;
        } else if (!isxdigit((unsigned char)t[i])) {
            return false;
        }
    }
    return true;
}

static int digits(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm). */
static int64_t days_from_civil(int y, int m, int d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const int64_t yoe = y - era * 400;
    const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

bool event_parse_timestamp(const char *s, int64_t *out_us)
{
    /* YYYY-MM-DDTHH:MM:SS[.f{1,9}](Z|±HH:MM) */
    size_t len = strlen(s);
    if (len < 20 || len > 35)
        return false;
    int year = digits(s, 4), mon = digits(s + 5, 2), day = digits(s + 8, 2);
    int hour = digits(s + 11, 2), min = digits(s + 14, 2), sec = digits(s + 17, 2);
    if (year < 1970 || mon < 1 || mon > 12 || day < 1 || hour < 0 || hour > 23 || min < 0 ||
        min > 59 || sec < 0 || sec > 59 || s[4] != '-' || s[7] != '-' ||
        (s[10] != 'T' && s[10] != 't') || s[13] != ':' || s[16] != ':')
        return false;
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    if (day > mdays[mon - 1] + (mon == 2 ? leap : 0))
        return false;
    const char *p = s + 19;
    int64_t frac_us = 0;
    if (*p == '.') {
        p++;
        int n = 0;
        int64_t scale = 100000;
        while (*p >= '0' && *p <= '9') {
            if (n < 6) {
                frac_us += (*p - '0') * scale;
                scale /= 10;
            }
            p++;
            n++;
        }
        if (n == 0 || n > 9)
            return false;
    }
    int offset_min;
    if (*p == 'Z' || *p == 'z') {
        offset_min = 0;
        p++;
    } else if ((*p == '+' || *p == '-') && strlen(p) == 6) {
        int oh = digits(p + 1, 2), om = digits(p + 4, 2);
        if (oh < 0 || oh > 23 || om < 0 || om > 59 || p[3] != ':')
            return false;
        offset_min = (oh * 60 + om) * (*p == '-' ? -1 : 1);
        p += 6;
    } else {
        return false; /* no offset: we cannot know when it happened */
    }
    if (*p != '\0')
        return false;
    int64_t secs = days_from_civil(year, mon, day) * 86400 + hour * 3600 + min * 60 + sec -
                   (int64_t)offset_min * 60;
    *out_us = secs * 1000000 + frac_us;
    return true;
}

/* The canonical form of a validated event, put together from its parts. It is byte for byte
 * what json_dumps(out, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII) prints for the
 * normalised event with occurred_at as an integer, which is how fingerprints were defined, and
 * without building, sorting and printing that object for every event of a batch. The only
 * values that may need escaping (note, device.model) are printed by jansson; every other value is
 * ASCII that JSON takes as it is (a UUID, a personnel number, catalogue keys, a serial number of
 * letters, digits and _.:/-, digits). tests/unit/test_event.c and the fuzzer hold it to the
 * jansson form. */
struct parts {
    int n;
    size_t len;
    struct {
        const char *s;
        size_t len;
    } v[40]; /* the most an event takes is 35 */
};

static void part(struct parts *p, const char *s)
{
    size_t len = strlen(s);
    p->v[p->n].s = s;
    p->v[p->n++].len = len;
    p->len += len;
}

static char *dump_string(const char *s)
{
    json_t *v = json_string_nocheck(s); /* jansson checked the UTF-8 when it parsed the body */
    char *text = v ? json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
    json_decref(v);
    return text;
}

static void part_bool(struct parts *p, const char *key, json_t *v, bool *first)
{
    if (v == NULL)
        return;
    part(p, *first ? "\"" : ",\"");
    part(p, key);
    part(p, json_is_true(v) ? "\":true" : "\":false");
    *first = false;
}

static char *canonical_text(const char *event_id, const char *employee, const char *item,
                            const char *state, int64_t at_us, json_t *device, json_t *features,
                            const char *note)
{
    struct parts p = {0};
    char *model = NULL, *note_text = NULL, *text = NULL;
    char at[24];
    snprintf(at, sizeof at, "%lld", (long long)at_us);
    part(&p, "{");
    if (device) {
        const char *imei = json_string_value(json_object_get(device, "imei"));
        const char *model_value = json_string_value(json_object_get(device, "model"));
        part(&p, "\"device\":{");
        if (imei) {
            part(&p, "\"imei\":\"");
            part(&p, imei);
            part(&p, "\",");
        }
        if (model_value) {
            if ((model = dump_string(model_value)) == NULL)
                goto out;
            part(&p, "\"model\":");
            part(&p, model);
            part(&p, ",");
        }
        part(&p, "\"serial\":\"");
        part(&p, json_string_value(json_object_get(device, "serial")));
        part(&p, "\"},");
    }
    part(&p, "\"employee\":\"");
    part(&p, employee);
    part(&p, "\",\"event_id\":\"");
    part(&p, event_id);
    part(&p, "\",");
    if (features) {
        bool first = true;
        part(&p, "\"features\":{");
        part_bool(&p, "cti", json_object_get(features, "cti"), &first);
        part_bool(&p, "one_number", json_object_get(features, "one_number"), &first);
        part(&p, "},");
    }
    part(&p, "\"item\":\"");
    part(&p, item);
    part(&p, "\",");
    if (note) {
        if ((note_text = dump_string(note)) == NULL)
            goto out;
        part(&p, "\"note\":");
        part(&p, note_text);
        part(&p, ",");
    }
    part(&p, "\"occurred_at\":");
    part(&p, at);
    part(&p, ",\"state\":\"");
    part(&p, state);
    part(&p, "\"}");
    if ((text = malloc(p.len + 1)) != NULL) {
        char *w = text;
        for (int i = 0; i < p.n; i++) {
            memcpy(w, p.v[i].s, p.v[i].len);
            w += p.v[i].len;
        }
        *w = '\0';
    }
out:
    free(model);
    free(note_text);
    return text;
}

static bool string_field(json_t *obj, const char *key, const char *path, bool required,
                         size_t maxlen, const char **out, struct api_error *err)
{
    json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (v == NULL || json_is_null(v)) {
        if (required)
            api_error_set(err, 400, "missing_field", path, "%s is required", path);
        return !required;
    }
    if (!json_is_string(v)) {
        api_error_set(err, 400, "invalid_type", path, "%s must be a string", path);
        return false;
    }
    /* characters, as PostgreSQL's length() counts them; jansson has checked the UTF-8 */
    size_t len = 0;
    for (const unsigned char *p = (const unsigned char *)json_string_value(v); *p; p++)
        len += (*p & 0xC0) != 0x80;
    if (len == 0 || len > maxlen) {
        api_error_set(err, 400, "invalid_length", path, "%s must have 1 to %zu characters", path,
                      maxlen);
        return false;
    }
    *out = json_string_value(v);
    return true;
}

static bool only_known_keys(json_t *obj, const char *const *known, const char *prefix,
                            struct api_error *err)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        bool ok = false;
        for (const char *const *k = known; *k; k++)
            if (strcmp(key, *k) == 0)
                ok = true;
        if (!ok) {
            char path[64];
            snprintf(path, sizeof path, "%s%.40s", prefix, key);
            api_error_set(err, 400, "unknown_field", path,
                          "unknown field %s; unknown fields are rejected, not dropped", path);
            return false;
        }
    }
    return true;
}

/* Serial numbers and personnel numbers: letters, digits and a few separators. */
static bool plain_code(const char *s, const char *extra)
{
    if (!isalnum((unsigned char)s[0]))
        return false;
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && strchr(extra, *p) == NULL)
            return false;
    return true;
}

static bool validate_device(json_t *dev, json_t *out, struct api_error *err)
{
    static const char *const known[] = {"serial", "model", "imei", NULL};
    if (!json_is_object(dev)) {
        api_error_set(err, 400, "invalid_type", "device", "device must be an object");
        return false;
    }
    if (!only_known_keys(dev, known, "device.", err))
        return false;
    const char *serial, *model, *imei;
    if (!string_field(dev, "serial", "device.serial", true, 64, &serial, err) ||
        !string_field(dev, "model", "device.model", false, 100, &model, err) ||
        !string_field(dev, "imei", "device.imei", false, 15, &imei, err))
        return false;
    if (!plain_code(serial, "_.:/-")) {
        api_error_set(err, 400, "invalid_format", "device.serial",
                      "device.serial may hold letters, digits and _ . : / - only");
        return false;
    }
    if (imei && !domain_imei_valid(imei)) {
        api_error_set(err, 400, "invalid_imei", "device.imei",
                      "device.imei must be 15 digits with a valid Luhn check digit");
        return false;
    }
    json_t *d = json_pack("{s:s}", "serial", serial);
    if (model)
        json_object_set_new(d, "model", json_string(model));
    if (imei)
        json_object_set_new(d, "imei", json_string(imei));
    json_object_set_new(out, "device", d);
    return true;
}

static bool validate_features(json_t *f, enum item item, json_t *out, struct api_error *err)
{
    static const char *const known[] = {"cti", "one_number", NULL};
    if (item != ITEM_HESSEN_VOICE) {
        api_error_set(err, 400, "invalid_field", "features",
                      "features are only for hessen_voice (CTI and One-Number-Service)");
        return false;
    }
    if (!json_is_object(f)) {
        api_error_set(err, 400, "invalid_type", "features", "features must be an object");
        return false;
    }
    if (!only_known_keys(f, known, "features.", err))
        return false;
    json_t *copy = json_object();
    const char *key;
    json_t *v;
    json_object_foreach(f, key, v)
    {
        if (!json_is_boolean(v)) {
            json_decref(copy);
            char path[40];
            snprintf(path, sizeof path, "features.%s", key);
            api_error_set(err, 400, "invalid_type", path, "%s must be true or false", path);
            return false;
        }
        json_object_set(copy, key, v);
    }
    json_object_set_new(out, "features", copy);
    return true;
}

json_t *event_validate(json_t *event, int64_t now_us, struct api_error *err)
{
    return event_validate_canonical(event, now_us, NULL, err);
}

json_t *event_validate_canonical(json_t *event, int64_t now_us, char **canonical,
                                 struct api_error *err)
{
    if (canonical)
        *canonical = NULL;
    static const char *const known[] = {"event_id", "employee", "item",     "state",
                                        "occurred_at", "device", "features", "note", NULL};
    if (!json_is_object(event)) {
        api_error_set(err, 400, "invalid_type", NULL, "an event must be a JSON object");
        return NULL;
    }
    if (!only_known_keys(event, known, "", err))
        return NULL;
    const char *event_id, *employee, *item_key, *state_key, *occurred_at, *note;
    if (!string_field(event, "event_id", "event_id", true, 36, &event_id, err) ||
        !string_field(event, "employee", "employee", true, EVENT_EMPLOYEE_MAX, &employee, err) ||
        !string_field(event, "item", "item", true, 64, &item_key, err) ||
        !string_field(event, "state", "state", true, 64, &state_key, err) ||
        !string_field(event, "occurred_at", "occurred_at", true, 64, &occurred_at, err) ||
        !string_field(event, "note", "note", false, EVENT_NOTE_MAX, &note, err))
        return NULL;
    if (!event_uuid_valid(event_id)) {
        api_error_set(err, 400, "invalid_uuid", "event_id",
                      "event_id must be a UUID (8-4-4-4-12 hexadecimal digits)");
        return NULL;
    }
    if (!plain_code(employee, "_-")) {
        api_error_set(err, 400, "invalid_format", "employee",
                      "employee must be a personnel number (letters, digits, _ and -)");
        return NULL;
    }
    enum item item;
    if (!item_parse(item_key, &item)) {
        api_error_set(err, 400, "unknown_item", "item",
                      "unknown item; items are mobile_device, hessen_smartphone, hessen_voice, "
                      "wlan_autologin");
        return NULL;
    }
    enum rollout_state state;
    if (!state_parse(state_key, &state)) {
        api_error_set(err, 400, "unknown_state", "state",
                      "unknown state; states are planned, ordered, delivered, active, returned, "
                      "cancelled");
        return NULL;
    }
    int64_t at_us;
    if (!event_parse_timestamp(occurred_at, &at_us)) {
        api_error_set(err, 400, "invalid_timestamp", "occurred_at",
                      "occurred_at must be an RFC 3339 date-time with an offset, e.g. "
                      "2026-11-20T09:30:00+01:00");
        return NULL;
    }
    if (at_us > now_us + EVENT_FUTURE_SLACK_US) {
        api_error_set(err, 400, "timestamp_in_future", "occurred_at",
                      "occurred_at lies in the future; check the clock of the sending machine");
        return NULL;
    }
    char uuid[37];
    for (int i = 0; i < 37; i++)
        uuid[i] = (char)tolower((unsigned char)event_id[i]);

    /* every value checked above: ASCII, so jansson need not check the UTF-8 again */
    json_t *out = json_object();
    json_object_set_new_nocheck(out, "event_id", json_stringn_nocheck(uuid, 36));
    json_object_set_new_nocheck(out, "employee", json_string_nocheck(employee));
    json_object_set_new_nocheck(out, "item", json_string_nocheck(item_key));
    json_object_set_new_nocheck(out, "state", json_string_nocheck(state_key));
    json_object_set_new_nocheck(out, "occurred_at", json_string_nocheck(occurred_at));
    json_t *dev = json_object_get(event, "device");
    json_t *feat = json_object_get(event, "features");
    if ((dev && !json_is_null(dev) && !validate_device(dev, out, err)) ||
        (feat && !json_is_null(feat) && !validate_features(feat, item, out, err))) {
        json_decref(out);
        return NULL;
    }
    if (note)
        json_object_set_new(out, "note", json_string(note));
    /* The fingerprint sees the instant, not how it was written: the same event sent with
     * +01:00 or as Z (an export read back) is the same event. */
    char *canon = canonical_text(uuid, employee, item_key, state_key, at_us,
                                 dev && !json_is_null(dev) ? json_object_get(out, "device") : NULL,
                                 feat && !json_is_null(feat) ? json_object_get(out, "features")
                                                             : NULL,
                                 note);
    char hex[65];
    if (canon == NULL || !digest_sha256_hex(canon, strlen(canon), hex)) {
        free(canon);
        json_decref(out);
        api_error_set(err, 500, "internal", NULL, "could not fingerprint the event");
        return NULL;
    }
    if (canonical)
        *canonical = canon;
    else
        free(canon);
    json_object_set_new(out, "hash", json_string(hex));
    return out;
}
