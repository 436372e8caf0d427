/* How the fingerprint's canonical form was first defined: jansson prints the normalised event,
 * keys sorted, compact, ASCII only, with occurred_at as microseconds since the epoch and no
 * "hash". event_validate_canonical() now puts the text together from its parts; the unit tests
 * and the event fuzzer hold every event they validate to this. */
#ifndef ROLLOUT_CANONICAL_REFERENCE_H
#define ROLLOUT_CANONICAL_REFERENCE_H

#include <jansson.h>
#include <stdint.h>

#include "event.h"

/* The reference text for a normalised event (as event_validate returns it), or NULL. */
static inline char *canonical_reference(json_t *normalised)
{
    int64_t at_us;
    json_t *copy = json_deep_copy(normalised);
    if (copy == NULL ||
        !event_parse_timestamp(json_string_value(json_object_get(copy, "occurred_at")), &at_us)) {
        json_decref(copy);
        return NULL;
    }
    json_object_del(copy, "hash");
    json_object_set_new(copy, "occurred_at", json_integer((json_int_t)at_us));
    char *text = json_dumps(copy, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
    json_decref(copy);
    return text;
}

#endif
