/*
 * Challenge-response with the shared secret (docs/PROTOCOL.md,
 * "Handshake"): each side sends a fresh random nonce and proves it knows
 * the secret with HMAC-SHA256 over both nonces, from OpenSSL's libcrypto.
 * The label differs per direction, so neither proof can be replayed or
 * reflected as the other; comparisons are constant-time.
 */
#ifdef HAVE_CONFIG_H
#include "config.h" /* _GNU_SOURCE: accept4, getaddrinfo */
#endif
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <string.h>

#include "repl.h"

static const char label_replica[] = "hashmmap-replicate v1 replica";
static const char label_primary[] = "hashmmap-replicate v1 primary";

int repl_random(void *buf, size_t n)
{
    return RAND_bytes(buf, (int)n) == 1 ? 0 : -1;
}

int repl_auth_mac(const struct repl_options *o, int from_primary, const uint8_t first[REPL_NONCE_LEN],
                  const uint8_t second[REPL_NONCE_LEN], uint8_t mac[REPL_MAC_LEN])
{
    const char *label = from_primary ? label_primary : label_replica;
    uint8_t msg[sizeof label_primary + 2 * REPL_NONCE_LEN];
    _Static_assert(sizeof label_primary == sizeof label_replica, "labels of equal length");
    memcpy(msg, label, sizeof label_primary);
    memcpy(msg + sizeof label_primary, first, REPL_NONCE_LEN);
    memcpy(msg + sizeof label_primary + REPL_NONCE_LEN, second, REPL_NONCE_LEN);
    unsigned len = 0;
    if (!HMAC(EVP_sha256(), o->secret, (int)o->secret_len, msg, sizeof msg, mac, &len) || len != REPL_MAC_LEN)
        return -1;
    return 0;
}

int repl_auth_check(const struct repl_options *o, int from_primary, const uint8_t first[REPL_NONCE_LEN],
                    const uint8_t second[REPL_NONCE_LEN], const uint8_t mac[REPL_MAC_LEN])
{
    uint8_t want[REPL_MAC_LEN];
    if (repl_auth_mac(o, from_primary, first, second, want))
        return 0;
    int ok = CRYPTO_memcmp(want, mac, REPL_MAC_LEN) == 0;
    OPENSSL_cleanse(want, sizeof want);
    return ok;
}

int repl_auth_session_keys(const struct repl_options *o, const uint8_t nonce_primary[REPL_NONCE_LEN],
                           const uint8_t nonce_replica[REPL_NONCE_LEN], uint8_t to_replica[REPL_MAC_LEN],
                           uint8_t to_primary[REPL_MAC_LEN])
{
    static const char labels[2][16] = {"seal to replica", "seal to primary"};
    uint8_t msg[16 + 2 * REPL_NONCE_LEN];
    for (int i = 0; i < 2; i++) {
        memcpy(msg, labels[i], 16);
        memcpy(msg + 16, nonce_primary, REPL_NONCE_LEN);
        memcpy(msg + 16 + REPL_NONCE_LEN, nonce_replica, REPL_NONCE_LEN);
        unsigned len = 0;
        if (!HMAC(EVP_sha256(), o->secret, (int)o->secret_len, msg, sizeof msg, i ? to_primary : to_replica, &len) ||
            len != REPL_MAC_LEN)
            return -1;
    }
    return 0;
}

int repl_seal_mac(const uint8_t key[REPL_MAC_LEN], uint64_t counter, const uint8_t *data, size_t len,
                  uint8_t mac[REPL_MAC_LEN])
{
    uint8_t ctr[8];
    for (int i = 0; i < 8; i++)
        ctr[i] = (uint8_t)(counter >> (56 - 8 * i));
    /* EVP_MAC (OpenSSL 3): HMAC over two pieces without copying the chunk. */
    EVP_MAC *hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = hmac ? EVP_MAC_CTX_new(hmac) : NULL;
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", (char *)"SHA256", 0), OSSL_PARAM_construct_end()};
    size_t out = 0;
    int ok = ctx && EVP_MAC_init(ctx, key, REPL_MAC_LEN, params) && EVP_MAC_update(ctx, ctr, sizeof ctr) &&
             EVP_MAC_update(ctx, data, len) && EVP_MAC_final(ctx, mac, &out, REPL_MAC_LEN) && out == REPL_MAC_LEN;
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(hmac);
    return ok ? 0 : -1;
}
