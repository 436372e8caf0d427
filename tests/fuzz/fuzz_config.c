/* libFuzzer target: the configuration loader (libconfig text through the settings table). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    struct rollout_config cfg;
    char err[CONFIG_ERROR_MAX];
    config_load_string(&cfg, text, "fuzz.conf", err);
    config_free(&cfg);
    free(text);
    return 0;
}
