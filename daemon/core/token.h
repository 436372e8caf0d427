/* API tokens: "rlt_" and 43 URL-safe base64 characters (256 random bits), so secret scanners
 * recognise a leaked one. Only the SHA-256 of a token is ever stored. */
#ifndef ROLLOUT_TOKEN_H
#define ROLLOUT_TOKEN_H

#include <stdbool.h>
#include <stddef.h>

#define TOKEN_PREFIX "rlt_"
#define TOKEN_LENGTH (4 + 43)
#define TOKEN_HASH_LEN 32

/* Writes a new random token (TOKEN_LENGTH characters and a NUL). False if the RNG failed. */
bool token_generate(char out[TOKEN_LENGTH + 1]);

/* Whether text has the shape of a token (prefix, length, alphabet). */
bool token_well_formed(const char *text, size_t len);

/* SHA-256 of the token's characters. */
void token_hash(const char *text, size_t len, unsigned char out[TOKEN_HASH_LEN]);

#endif
