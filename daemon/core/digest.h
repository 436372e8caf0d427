/* SHA-256, for event fingerprints, token hashes and migration checksums. */
#ifndef ROLLOUT_DIGEST_H
#define ROLLOUT_DIGEST_H

#include <stdbool.h>
#include <stddef.h>

#define DIGEST_SHA256_LEN 32

/* The SHA-256 of len bytes at data. False if OpenSSL failed (no SHA-256 provider). */
bool digest_sha256(const void *data, size_t len, unsigned char out[DIGEST_SHA256_LEN]);

/* The same in lower-case hexadecimal, NUL-terminated. False as digest_sha256. */
bool digest_sha256_hex(const void *data, size_t len, char hex[DIGEST_SHA256_LEN * 2 + 1]);

#endif
