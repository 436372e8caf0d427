/* Parsing and validation of rollout events (the contract's JSON), shared by POST /v1/events and
 * `rolloutctl events import`: one implementation, so both accept and reject exactly the same.
 * Pure: no I/O; the clock is passed in. */
#ifndef ROLLOUT_EVENT_H
#define ROLLOUT_EVENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

/* An error in the contract's shape: {"error": {"code", "message", "field"}}. */
struct api_error {
    int status;       /* HTTP status */
    const char *code; /* stable, for programs to switch on */
    char message[256];
    char field[64]; /* JSON path of the offending field, or "" */
};

void api_error_set(struct api_error *err, int status, const char *code, const char *field,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* {"code", "message", "field"} as a new reference. */
json_t *api_error_body(const struct api_error *err);
/* {"error": {...}} as a new reference. */
json_t *api_error_json(const struct api_error *err);

#define EVENT_NOTE_MAX 1000
#define EVENT_EMPLOYEE_MAX 32
#define EVENT_FUTURE_SLACK_US (5LL * 60 * 1000000) /* clocks of support laptops drift */

/* Parses a request body: one event (object) or a batch (array). JSON_REJECT_DUPLICATES is on;
 * NUL bytes and invalid UTF-8 are rejected by jansson. Returns a new reference or NULL with err. */
json_t *event_parse_body(const char *body, size_t len, struct api_error *err);

/* Validates one event object against the contract. On success returns the normalised event
 * (lower-case UUID, known keys only) as a new reference, with "hash" set to the hex SHA-256 of
 * its canonical form, so the same event posted twice has the same hash however its keys were
 * ordered. now_us: the current time in microseconds since the epoch. */
json_t *event_validate(json_t *event, int64_t now_us, struct api_error *err);

/* As event_validate, and *canonical: the canonical form that was hashed (compact JSON, keys
 * sorted, ASCII only, occurred_at in microseconds since the epoch, no "hash"), which the group
 * commit sends on (see ingest.c). A new string for the caller to free; NULL on failure. */
json_t *event_validate_canonical(json_t *event, int64_t now_us, char **canonical,
                                 struct api_error *err);

/* RFC 3339 date-time with a mandatory offset ("Z" or ±hh:mm); fractional seconds allowed.
 * Stores microseconds since the epoch. */
bool event_parse_timestamp(const char *text, int64_t *out_us);

/* 8-4-4-4-12 hexadecimal digits. */
bool event_uuid_valid(const char *text);

#endif
