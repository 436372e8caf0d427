#include "domain.h"

#include <string.h>

static const struct item_info items[ITEM_COUNT] = {
    [ITEM_MOBILE_DEVICE] = {"mobile_device", "Mobile Arbeitsplatzausstattung",
                            "Priorität auf mobile, digitale Arbeitsplatzausstattung"},
    [ITEM_HESSEN_SMARTPHONE] = {"hessen_smartphone", "HessenSmartphone",
                                "Erweiterung der Nutzergruppe des HessenSmartphones"},
    [ITEM_HESSEN_VOICE] = {"hessen_voice", "HessenVoice (CTI, One-Number)",
                           "Rollout von HessenVoice mit CTI und One-Number-Service"},
    [ITEM_WLAN_AUTOLOGIN] = {"wlan_autologin", "Automatische WLAN-Einwahl",
                             "Automatische WLAN-Einwahl in hessischen Dienststellen"},
};

static const char *const state_names[STATE_COUNT] = {
    [STATE_NONE] = "none",           [STATE_PLANNED] = "planned",
    [STATE_ORDERED] = "ordered",     [STATE_DELIVERED] = "delivered",
    [STATE_ACTIVE] = "active",       [STATE_RETURNED] = "returned",
    [STATE_CANCELLED] = "cancelled",
};

const struct item_info *item_info(enum item item)
{
    return &items[item];
}

bool item_parse(const char *key, enum item *out)
{
    for (int i = 0; i < ITEM_COUNT; i++) {
        if (strcmp(key, items[i].key) == 0) {
            *out = (enum item)i;
            return true;
        }
    }
    return false;
}

const char *state_name(enum rollout_state state)
{
    return state_names[state];
}

bool state_parse(const char *name, enum rollout_state *out)
{
    for (int s = STATE_FIRST_REAL; s < STATE_COUNT; s++) {
        if (strcmp(name, state_names[s]) == 0) {
            *out = (enum rollout_state)s;
            return true;
        }
    }
    return false;
}

static bool is_progress(enum rollout_state s)
{
    return s == STATE_PLANNED || s == STATE_ORDERED || s == STATE_DELIVERED || s == STATE_ACTIVE;
}

bool domain_transition_allowed(enum rollout_state from, enum rollout_state to)
{
    switch (from) {
    case STATE_NONE:
        return is_progress(to);
    case STATE_PLANNED:
    case STATE_ORDERED:
    case STATE_DELIVERED:
        /* forwards, skipping allowed; the enum order is the rollout order */
        return (is_progress(to) && to > from) || to == STATE_CANCELLED;
    case STATE_ACTIVE:
        return to == STATE_RETURNED;
    case STATE_RETURNED:
        return to == STATE_PLANNED || to == STATE_ORDERED || to == STATE_CANCELLED;
    case STATE_CANCELLED:
        return to == STATE_PLANNED || to == STATE_ORDERED;
    case STATE_COUNT:
        break;
    }
    return false;
}

bool domain_imei_valid(const char *imei)
{
    if (strlen(imei) != 15)
        return false;
    int sum = 0;
    for (int i = 0; i < 15; i++) {
        if (imei[i] < '0' || imei[i] > '9')
            return false;
        int d = imei[i] - '0';
        if (i % 2 == 1) {
            d *= 2;
            if (d > 9)
                d -= 9;
        }
        sum += d;
    }
    return sum % 10 == 0;
}
