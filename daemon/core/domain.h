/* The domain rules of the rollout, pure C without I/O: the items, the states of one employee's
 * item and the transitions between them. The database enforces the same rules with constraints
 * and in rollout_apply_events() (schema/); tests/unit checks both agree on the table. */
#ifndef ROLLOUT_DOMAIN_H
#define ROLLOUT_DOMAIN_H

#include <stdbool.h>

enum item {
    ITEM_MOBILE_DEVICE,     /* notebook or virtual HessenPC with remote access */
    ITEM_HESSEN_SMARTPHONE, /* the managed state smartphone */
    ITEM_HESSEN_VOICE,      /* VoIP telephony with CTI and One-Number-Service */
    ITEM_WLAN_AUTOLOGIN,    /* automatic WLAN login profile */
    ITEM_COUNT
};

enum rollout_state {
    STATE_NONE,      /* nothing recorded yet for this employee and item */
    STATE_PLANNED,   /* the employee is scheduled to get the item */
    STATE_ORDERED,   /* the item was ordered for the employee */
    STATE_DELIVERED, /* the item reached the employee but is not in use */
    STATE_ACTIVE,    /* in use: this is "done" */
    STATE_RETURNED,  /* handed back after having been active */
    STATE_CANCELLED, /* withdrawn before it became active */
    STATE_COUNT
};

/* The states an event may carry and a counter may count (all but STATE_NONE). */
#define STATE_FIRST_REAL STATE_PLANNED

struct item_info {
    const char *key;
    const char *title;          /* German, for the dashboard */
    const char *recommendation; /* the report's wording */
};

const struct item_info *item_info(enum item item);
bool item_parse(const char *key, enum item *out);
const char *state_name(enum rollout_state state);
bool state_parse(const char *name, enum rollout_state *out);

/* Whether an employee's item may go from `from` to `to`:
 * forward along planned → ordered → delivered → active (steps may be skipped),
 * active → returned, any state but active → cancelled (not cancelled again),
 * returned/cancelled → planned/ordered,
 * and from nothing to any of planned, ordered, delivered, active. */
bool domain_transition_allowed(enum rollout_state from, enum rollout_state to);

/* Luhn check of a 15-digit IMEI. */
bool domain_imei_valid(const char *imei);

#endif
