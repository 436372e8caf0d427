/* libFuzzer target: the request body parser and the event validator, exactly as
 * POST /v1/events runs them (daemon/core/event.c). */
#include <stddef.h>
#include <stdint.h>

#include "event.h"

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
            json_t *ok = event_validate(ev, now, &err);
            json_decref(ok);
        }
    } else {
        json_decref(event_validate(body, now, &err));
    }
    json_decref(body);
    return 0;
}
