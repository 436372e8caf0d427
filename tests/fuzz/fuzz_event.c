/* libFuzzer target: the request body parser and the event validator, exactly as
 * POST /v1/events runs them (daemon/core/event.c). */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "canonical_reference.h"
#include "event.h"

/* Validates one event; a valid one's canonical text must be the reference's, byte for byte (the
 * fingerprint of every stored event depends on it). */
static void validate(json_t *ev, int64_t now)
{
    struct api_error err;
    char *canonical;
    json_t *ok = event_validate_canonical(ev, now, &canonical, &err);
    if (ok) {
        char *want = canonical_reference(ok);
        if (want == NULL || strcmp(canonical, want) != 0) {
            fprintf(stderr, "canonical text differs:\n  got  %s\n  want %s\n", canonical,
                    want ? want : "(none)");
            abort();
        }
        free(want);
        free(canonical);
    }
    json_decref(ok);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct api_error err;
    json_t *body = event_parse_body((const char *)data, size, &err);
    if (body == NULL) {
        json_decref(api_error_json(&err));
        return 0;
    }
    const int64_t now = 1795000000LL * 1000000;
    if (json_is_array(body)) {
        size_t i;
        json_t *ev;
        json_array_foreach(body, i, ev)
        {
            validate(ev, now);
        }
    } else {
        validate(body, now);
    }
    json_decref(body);
    return 0;
}
