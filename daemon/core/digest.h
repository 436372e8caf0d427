/* SHA-256, for event fingerprints, token hashes and migration checksums. */
#ifndef ROLLOUT_DIGEST_H
#define ROLLOUT_DIGEST_H

#include <stdbool.h>
#include <stddef.h>

#define DIGEST_SHA256_LEN 32

/* The SHA-256 of len bytes at data. False if OpenSSL failed (no SHA-256 provider). */
bool digest_sha256(const void *data, size_t len, unsigned char out[DIGEST_SHA256_LEN]);

/* The digest in lower-case hexadecimal: hex holds DIGEST_SHA256_LEN * 2 + 1 characters. */
void digest_hex(const unsigned char md[DIGEST_SHA256_LEN], char hex[DIGEST_SHA256_LEN * 2 + 1]);

#endif
