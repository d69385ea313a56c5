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
