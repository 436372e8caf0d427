/* The domain rules (daemon/core/domain.c): items, states, the transition table, IMEI checks. */
#include <criterion/criterion.h>
#include <string.h>

#include "domain.h"

/* The whole transition table, written out from DOMAIN.md independently of the code:
 * planned → ordered → delivered → active (forwards, steps may be skipped), active → returned,
 * cancelled from any state but active (and not again from cancelled, nor from nothing),
 * returned/cancelled start again at planned/ordered, nothing → planned/ordered/delivered/active.
 * Rows: from (none first); columns: to. */
#define Y true
#define N false
/* clang-format off */
static const bool expected[STATE_COUNT][STATE_COUNT] = {
    /*                 none planned ordered delivered active returned cancelled */
    [STATE_NONE] = {N, Y, Y, Y, Y, N, N},
    [STATE_PLANNED] = {N, N, Y, Y, Y, N, Y},
    [STATE_ORDERED] = {N, N, N, Y, Y, N, Y},
    [STATE_DELIVERED] = {N, N, N, N, Y, N, Y},
    [STATE_ACTIVE] = {N, N, N, N, N, Y, N},
    [STATE_RETURNED] = {N, Y, Y, N, N, N, Y},
    [STATE_CANCELLED] = {N, Y, Y, N, N, N, N},
};
/* clang-format on */
#undef Y
#undef N

Test(transition, whole_table_matches_the_contract)
{
    int checked = 0;
    for (int from = STATE_NONE; from < STATE_COUNT; from++) {
        for (int to = STATE_FIRST_REAL; to < STATE_COUNT; to++) {
            bool got = domain_transition_allowed((enum rollout_state)from, (enum rollout_state)to);
            cr_expect_eq(got, expected[from][to], "%s -> %s: expected %s, got %s",
                         state_name((enum rollout_state)from), state_name((enum rollout_state)to),
                         expected[from][to] ? "allowed" : "illegal", got ? "allowed" : "illegal");
            checked++;
        }
    }
    cr_assert_eq(checked, 7 * 6, "the table has 7 from-states and 6 to-states");
}

Test(transition, nothing_leads_back_to_none)
{
    for (int from = STATE_NONE; from < STATE_COUNT; from++)
        cr_expect_not(domain_transition_allowed((enum rollout_state)from, STATE_NONE),
                      "%s -> none must be illegal", state_name((enum rollout_state)from));
}

Test(transition, done_is_only_left_by_a_return)
{
    int ways_out = 0;
    for (int to = STATE_FIRST_REAL; to < STATE_COUNT; to++)
        ways_out += domain_transition_allowed(STATE_ACTIVE, (enum rollout_state)to);
    cr_assert_eq(ways_out, 1);
    cr_assert(domain_transition_allowed(STATE_ACTIVE, STATE_RETURNED));
    cr_assert_not(domain_transition_allowed(STATE_ACTIVE, STATE_CANCELLED));
    cr_assert_not(domain_transition_allowed(STATE_ACTIVE, STATE_ACTIVE));
}

Test(transition, wlan_profile_skips_straight_to_active)
{
    cr_assert(domain_transition_allowed(STATE_PLANNED, STATE_ACTIVE));
    cr_assert(domain_transition_allowed(STATE_NONE, STATE_ACTIVE));
}

Test(item, parse_every_key_and_round_trip)
{
    static const char *const keys[ITEM_COUNT] = {"mobile_device", "hessen_smartphone",
                                                 "hessen_voice", "wlan_autologin"};
    for (int i = 0; i < ITEM_COUNT; i++) {
        enum item it = ITEM_COUNT;
        cr_assert(item_parse(keys[i], &it), "%s must parse", keys[i]);
        cr_assert_eq(it, (enum item)i, "%s parsed to %d", keys[i], it);
        cr_assert_str_eq(item_info(it)->key, keys[i]);
        cr_assert(item_info(it)->title != NULL && item_info(it)->title[0] != '\0');
        cr_assert(item_info(it)->recommendation != NULL &&
                  item_info(it)->recommendation[0] != '\0');
    }
}

Test(item, rejects_unknown_keys)
{
    static const char *const bad[] = {"",
                                      "mobile",
                                      "Mobile_Device",
                                      "MOBILE_DEVICE",
                                      "mobile_device ",
                                      " mobile_device",
                                      "mobile_devicex",
                                      "hessen-voice",
                                      "wlan",
                                      "none",
                                      "active"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        enum item it = ITEM_HESSEN_VOICE;
        cr_expect_not(item_parse(bad[i], &it), "\"%s\" must not parse as an item", bad[i]);
        cr_expect_eq(it, ITEM_HESSEN_VOICE, "a failed parse must leave the output alone");
    }
}

Test(item, titles_are_the_reports_wording)
{
    cr_assert_str_eq(item_info(ITEM_HESSEN_VOICE)->recommendation,
                     "Rollout von HessenVoice mit CTI und One-Number-Service");
    cr_assert_str_eq(item_info(ITEM_HESSEN_SMARTPHONE)->title, "HessenSmartphone");
}

Test(state, parse_every_real_state_and_round_trip)
{
    static const char *const names[] = {"planned", "ordered",  "delivered",
                                        "active",  "returned", "cancelled"};
    for (int i = 0; i < 6; i++) {
        enum rollout_state s = STATE_NONE;
        cr_assert(state_parse(names[i], &s), "%s must parse", names[i]);
        cr_assert_eq(s, (enum rollout_state)(STATE_FIRST_REAL + i));
        cr_assert_str_eq(state_name(s), names[i]);
    }
    cr_assert_str_eq(state_name(STATE_NONE), "none");
}

Test(state, rejects_none_and_unknown_names)
{
    /* "none" is the absence of a state: no event may carry it */
    static const char *const bad[] = {"none",    "",         "Active", "ACTIVE",    "activ",
                                      "active ", "canceled", "done",   "returned\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        enum rollout_state s = STATE_ACTIVE;
        cr_expect_not(state_parse(bad[i], &s), "\"%s\" must not parse as a state", bad[i]);
        cr_expect_eq(s, STATE_ACTIVE, "a failed parse must leave the output alone");
    }
}

Test(imei, valid_luhn)
{
    static const char *const good[] = {"356938035643809", "490154203237518", "000000000000000",
                                       "353918056543214"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        cr_expect(domain_imei_valid(good[i]), "%s has a valid check digit", good[i]);
}

Test(imei, wrong_check_digit)
{
    /* every other last digit of a valid IMEI is wrong */
    char imei[] = "356938035643809";
    for (char d = '0'; d <= '9'; d++) {
        imei[14] = d;
        cr_expect_eq(domain_imei_valid(imei), d == '9', "%s", imei);
    }
    /* two neighbouring digits swapped: Luhn catches it */
    cr_expect_not(domain_imei_valid("536938035643809"));
    cr_expect_not(domain_imei_valid("490154203237517"));
}

Test(imei, wrong_length_or_characters)
{
    static const char *const bad[] = {
        "",
        "35693803564380",   /* 14 digits */
        "3569380356438090", /* 16 digits */
        "35693803564380-9",
        "35693803564380A",
        "3569380356438O9", /* letter O */
        " 356938035643809",
        "356938035643809 ",
        "35693803 643809",
        "+35693803564380",
        "3569380356438\xd9\xa9", /* an Arabic-Indic digit */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_expect_not(domain_imei_valid(bad[i]), "\"%s\" must be rejected", bad[i]);
}
