#include "token.h"

#include <openssl/rand.h>
#include <string.h>

#include "digest.h"

_Static_assert(TOKEN_HASH_LEN == DIGEST_SHA256_LEN, "a token hash is a SHA-256");

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

bool token_generate(char out[TOKEN_LENGTH + 1])
{
    unsigned char raw[33]; /* 256 bits; the 33rd byte pads to a whole number of base64 groups */
    if (RAND_bytes(raw, sizeof raw) != 1)
        return false;
    raw[32] = 0;
    memcpy(out, TOKEN_PREFIX, 4);
    char *p = out + 4;
    for (int i = 0; i < 33; i += 3) {
        unsigned v = (unsigned)raw[i] << 16 | (unsigned)raw[i + 1] << 8 | raw[i + 2];
        *p++ = b64url[(v >> 18) & 63];
        *p++ = b64url[(v >> 12) & 63];
        *p++ = b64url[(v >> 6) & 63];
        *p++ = b64url[v & 63];
    }
    /* 44 characters were written; the last only carries the zero pad bits: drop it */
    out[TOKEN_LENGTH] = '\0';
    return true;
}

bool token_well_formed(const char *text, size_t len)
{
    if (len != TOKEN_LENGTH || memcmp(text, TOKEN_PREFIX, 4) != 0)
        return false;
    for (size_t i = 4; i < len; i++)
        if (text[i] == '\0' || strchr(b64url, text[i]) == NULL)
            return false;
    return true;
}

void token_hash(const char *text, size_t len, unsigned char out[TOKEN_HASH_LEN])
{
    if (!digest_sha256(text, len, out))
        memset(out, 0, TOKEN_HASH_LEN); /* matches no stored token */
}
