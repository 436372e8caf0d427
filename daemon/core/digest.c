#include "digest.h"

#include <openssl/evp.h>

bool digest_sha256(const void *data, size_t len, unsigned char out[DIGEST_SHA256_LEN])
{
    /* Fetched once. EVP_sha256() makes OpenSSL 3 look the implementation up again for every
     * digest: a sixth of the time an event's validation took, and the same again for each
     * request's token. rolloutd and rolloutctl are single-threaded. */
    static EVP_MD *sha256;
    if (sha256 == NULL && (sha256 = EVP_MD_fetch(NULL, "SHA256", NULL)) == NULL)
        return false;
    unsigned int n = 0;
    return EVP_Digest(data, len, out, &n, sha256, NULL) == 1 && n == DIGEST_SHA256_LEN;
}

bool digest_sha256_hex(const void *data, size_t len, char hex[DIGEST_SHA256_LEN * 2 + 1])
{
    unsigned char md[DIGEST_SHA256_LEN];
    if (!digest_sha256(data, len, md))
        return false;
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < DIGEST_SHA256_LEN; i++) {
        hex[2 * i] = digits[md[i] >> 4];
        hex[2 * i + 1] = digits[md[i] & 15];
    }
    hex[DIGEST_SHA256_LEN * 2] = '\0';
    return true;
}
