/* API tokens (daemon/core/token.c): shape, randomness, well-formedness, hashing. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "token.h"

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static void hex(const unsigned char *md, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

Test(token, format_is_prefix_and_43_url_safe_characters)
{
    char t[TOKEN_LENGTH + 1];
    memset(t, 'x', sizeof t);
    cr_assert(token_generate(t));
    cr_assert_eq(strlen(t), 47, "token %s has length %zu", t, strlen(t));
    cr_assert_eq(TOKEN_LENGTH, 47);
    cr_assert(strncmp(t, "rlt_", 4) == 0, "token %s lacks the rlt_ prefix", t);
    for (int i = 4; i < 47; i++)
        cr_assert(strchr(alphabet, t[i]) != NULL,
                  "character %d (%c) of %s is not URL-safe "
                  "base64",
                  i, t[i], t);
    cr_assert(token_well_formed(t, strlen(t)));
}

Test(token, two_tokens_differ)
{
    char a[TOKEN_LENGTH + 1], b[TOKEN_LENGTH + 1];
    cr_assert(token_generate(a));
    cr_assert(token_generate(b));
    cr_assert_str_neq(a, b);
}

/* 256 random bits: over many tokens every position varies and every character shows up. */
Test(token, many_tokens_are_distinct_and_use_the_whole_alphabet)
{
    enum { N = 2000 };
    static char toks[N][TOKEN_LENGTH + 1];
    bool seen[256] = {false};
    for (int i = 0; i < N; i++) {
        cr_assert(token_generate(toks[i]));
        cr_assert(token_well_formed(toks[i], TOKEN_LENGTH), "%s", toks[i]);
        for (int k = 4; k < 46; k++) /* the last character carries only 4 random bits */
            seen[(unsigned char)toks[i][k]] = true;
    }
    for (int i = 0; i < N; i++)
        for (int j = i + 1; j < N; j++)
            cr_assert(strcmp(toks[i], toks[j]) != 0, "tokens %d and %d are equal: %s", i, j,
                      toks[i]);
    for (const char *c = alphabet; *c; c++)
        cr_expect(seen[(unsigned char)*c], "character %c never appeared in %d tokens", *c, N);
}

Test(token, well_formed_rejects_wrong_prefix)
{
    char t[TOKEN_LENGTH + 1];
    cr_assert(token_generate(t));
    static const char *const prefixes[] = {"RLT_", "rlt-", "rlx_", "xlt_", "rlt:"};
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++) {
        char bad[TOKEN_LENGTH + 1];
        memcpy(bad, t, sizeof bad);
        memcpy(bad, prefixes[i], 4);
        cr_expect_not(token_well_formed(bad, strlen(bad)), "%s must be rejected", bad);
    }
}

Test(token, well_formed_rejects_wrong_length)
{
    char t[TOKEN_LENGTH + 2];
    cr_assert(token_generate(t));
    cr_expect_not(token_well_formed(t, TOKEN_LENGTH - 1), "one character short");
    cr_expect_not(token_well_formed(t, 4), "the prefix alone");
    cr_expect_not(token_well_formed("", 0), "empty");
    cr_expect_not(token_well_formed("rlt_", 4), "the prefix alone");
    t[TOKEN_LENGTH] = 'A';
    t[TOKEN_LENGTH + 1] = '\0';
    cr_expect_not(token_well_formed(t, TOKEN_LENGTH + 1), "one character too many");
    /* the same shape with 44 characters, as standard base64 with padding would give */
    char padded[TOKEN_LENGTH + 2];
    memcpy(padded, t, TOKEN_LENGTH);
    padded[TOKEN_LENGTH] = '=';
    padded[TOKEN_LENGTH + 1] = '\0';
    cr_expect_not(token_well_formed(padded, strlen(padded)));
}

Test(token, well_formed_rejects_characters_outside_the_alphabet)
{
    char t[TOKEN_LENGTH + 1];
    cr_assert(token_generate(t));
    /* standard base64, padding, blanks, a NUL, non-ASCII */
    static const char bad_chars[] = {'+', '/', '=', ' ', '.', '~', '\t', '\0', '\x80', '\xff'};
    for (size_t i = 0; i < sizeof bad_chars; i++) {
        for (int pos = 4; pos < TOKEN_LENGTH; pos += 21) {
            char bad[TOKEN_LENGTH + 1];
            memcpy(bad, t, sizeof bad);
            bad[pos] = bad_chars[i];
            cr_expect_not(token_well_formed(bad, TOKEN_LENGTH),
                          "character 0x%02x at %d must be rejected", (unsigned char)bad_chars[i],
                          pos);
        }
    }
}

Test(token, hash_is_sha256)
{
    /* FIPS 180-2 test vectors */
    unsigned char md[TOKEN_HASH_LEN];
    char h[2 * TOKEN_HASH_LEN + 1];
    token_hash("abc", 3, md);
    hex(md, sizeof md, h);
    cr_assert_str_eq(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    token_hash("", 0, md);
    hex(md, sizeof md, h);
    cr_assert_str_eq(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    token_hash(m, strlen(m), md);
    hex(md, sizeof md, h);
    cr_assert_str_eq(h, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

Test(token, hash_covers_exactly_len_bytes)
{
    unsigned char a[TOKEN_HASH_LEN], b[TOKEN_HASH_LEN];
    token_hash("abcdef", 3, a);
    token_hash("abc", 3, b);
    cr_assert_arr_eq(a, b, sizeof a);
    token_hash("abd", 3, b);
    cr_assert_arr_neq(a, b, sizeof a);
}
