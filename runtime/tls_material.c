/*
 * tls_material.c — in-memory CA, server and client certificates for
 * `atom sim --tls`. EC P-256 keys: generating them is fast enough that every
 * test run gets its own CA, so no key material ever lives in the repository.
 */
#include "tls_material.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>

static int tls_fail(atom_error *err, const char *what)
{
    unsigned long e = ERR_get_error();
    char buf[256] = "unknown OpenSSL error";
    if (e)
        ERR_error_string_n(e, buf, sizeof buf);
    ERR_clear_error();
    return atom_error_set(err, ATOM_EIO, "tls: %s: %s", what, buf);
}

static EVP_PKEY *tls_new_key(void)
{
    return EVP_EC_gen("P-256");
}

static int tls_add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (ext == NULL)
        return 0;
    int ok = X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
    return ok;
}

/* A certificate for key, signed by issuer_key (self-signed when issuer is
 * NULL). exts is a NULL-terminated list of {nid, value} pairs. */
typedef struct tls_ext {
    int nid;
    const char *value;
} tls_ext;

static X509 *tls_make_cert(EVP_PKEY *key, const char *cn, const char *org, X509 *issuer,
                           EVP_PKEY *issuer_key, const tls_ext *exts)
{
    X509 *cert = X509_new();
    if (cert == NULL)
        return NULL;
    unsigned char serial[16];
    BIGNUM *bn = NULL;
    int ok = X509_set_version(cert, 2) && RAND_bytes(serial, sizeof serial) == 1;
    if (ok) {
        serial[0] &= 0x7f; /* positive */
        bn = BN_bin2bn(serial, sizeof serial, NULL);
        ok = bn && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)) != NULL;
    }
    BN_free(bn);
    /* An hour of backdating absorbs clock skew between processes. */
    ok = ok && X509_gmtime_adj(X509_getm_notBefore(cert), -3600) &&
         X509_gmtime_adj(X509_getm_notAfter(cert), 365L * 24 * 3600) &&
         X509_set_pubkey(cert, key);
    X509_NAME *name = X509_get_subject_name(cert);
    if (ok && org)
        ok = X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)org, -1,
                                        -1, 0);
    ok = ok && X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn,
                                          -1, -1, 0);
    X509 *signer = issuer ? issuer : cert;
    ok = ok && X509_set_issuer_name(cert, X509_get_subject_name(signer));
    for (const tls_ext *e = exts; ok && e->value; e++)
        ok = tls_add_ext(cert, signer, e->nid, e->value);
    ok = ok && X509_sign(cert, issuer_key ? issuer_key : key, EVP_sha256()) > 0;
    if (!ok) {
        X509_free(cert);
        return NULL;
    }
    return cert;
}

static char *tls_bio_string(BIO *bio)
{
    char *data = NULL;
    long len = BIO_get_mem_data(bio, &data);
    if (len < 0)
        return NULL;
    char *out = malloc((size_t)len + 1);
    if (out) {
        memcpy(out, data, (size_t)len);
        out[len] = '\0';
    }
    return out;
}

static char *tls_cert_pem(X509 *cert)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *out = NULL;
    if (bio && PEM_write_bio_X509(bio, cert))
        out = tls_bio_string(bio);
    BIO_free(bio);
    return out;
}

static char *tls_key_pem(EVP_PKEY *key)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *out = NULL;
    if (bio && PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL))
        out = tls_bio_string(bio);
    BIO_free(bio);
    return out;
}

char *tls_base64(const char *s, size_t len)
{
    size_t cap = 4 * ((len + 2) / 3) + 1;
    char *out = malloc(cap);
    if (out)
        EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)s, (int)len);
    return out;
}

int tls_material_generate(tls_material *m, const char *token, atom_error *err)
{
    if (token) {
        size_t n = strlen(token);
        if (n == 0 || n > TLS_TOKEN_MAX)
            return atom_error_set(err, ATOM_EINVAL, "--token must be 1 to %d characters",
                                  TLS_TOKEN_MAX);
        memcpy(m->token, token, n + 1);
    } else {
        unsigned char raw[24];
        if (RAND_bytes(raw, sizeof raw) != 1)
            return tls_fail(err, "random token");
        for (size_t i = 0; i < sizeof raw; i++)
            snprintf(m->token + 2 * i, 3, "%02x", raw[i]);
    }

    EVP_PKEY *ca_key = tls_new_key();
    EVP_PKEY *client_key = tls_new_key();
    m->server_key = tls_new_key();
    X509 *client_cert = NULL;
    int rc = ATOM_OK;
    if (!ca_key || !client_key || !m->server_key) {
        rc = tls_fail(err, "generating EC keys");
        goto done;
    }
    static const tls_ext ca_exts[] = {
        {NID_basic_constraints, "critical,CA:TRUE"},
        {NID_key_usage, "critical,keyCertSign,cRLSign,digitalSignature"},
        {NID_subject_key_identifier, "hash"},
        {0, NULL},
    };
    m->ca_cert = tls_make_cert(ca_key, "atom-sim-ca", NULL, NULL, NULL, ca_exts);
    if (m->ca_cert == NULL) {
        rc = tls_fail(err, "making the CA certificate");
        goto done;
    }
    static const tls_ext server_exts[] = {
        {NID_basic_constraints, "critical,CA:FALSE"},
        {NID_key_usage, "critical,digitalSignature,keyEncipherment"},
        {NID_ext_key_usage, "serverAuth"},
        {NID_subject_alt_name, "IP:127.0.0.1,DNS:localhost,IP:::1"},
        {NID_authority_key_identifier, "keyid:always"},
        {0, NULL},
    };
    m->server_cert =
        tls_make_cert(m->server_key, "atom-sim", NULL, m->ca_cert, ca_key, server_exts);
    static const tls_ext client_exts[] = {
        {NID_basic_constraints, "critical,CA:FALSE"},
        {NID_key_usage, "critical,digitalSignature,keyEncipherment"},
        {NID_ext_key_usage, "clientAuth"},
        {NID_authority_key_identifier, "keyid:always"},
        {0, NULL},
    };
    client_cert = tls_make_cert(client_key, "atom-sim-admin", "system:masters", m->ca_cert,
                                ca_key, client_exts);
    if (m->server_cert == NULL || client_cert == NULL) {
        rc = tls_fail(err, "making the server and client certificates");
        goto done;
    }
    m->ca_pem = tls_cert_pem(m->ca_cert);
    m->client_cert_pem = tls_cert_pem(client_cert);
    m->client_key_pem = tls_key_pem(client_key);
    if (!m->ca_pem || !m->client_cert_pem || !m->client_key_pem)
        rc = tls_fail(err, "encoding PEM");
done:
    X509_free(client_cert);
    EVP_PKEY_free(ca_key);
    EVP_PKEY_free(client_key);
    return rc;
}

SSL_CTX *tls_material_server_ctx(const tls_material *m, atom_error *err)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        tls_fail(err, "SSL_CTX_new");
        return NULL;
    }
    X509_STORE *store = SSL_CTX_get_cert_store(ctx);
    STACK_OF(X509_NAME) *cas = sk_X509_NAME_new_null();
    X509_NAME *ca_name = X509_NAME_dup(X509_get_subject_name(m->ca_cert));
    int ok = SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) &&
             SSL_CTX_use_certificate(ctx, m->server_cert) == 1 &&
             SSL_CTX_use_PrivateKey(ctx, m->server_key) == 1 &&
             SSL_CTX_check_private_key(ctx) == 1 && X509_STORE_add_cert(store, m->ca_cert) == 1 &&
             cas && ca_name && sk_X509_NAME_push(cas, ca_name) > 0;
    if (!ok) {
        if (cas && sk_X509_NAME_num(cas) == 0)
            X509_NAME_free(ca_name);
        sk_X509_NAME_pop_free(cas, X509_NAME_free);
        SSL_CTX_free(ctx);
        tls_fail(err, "configuring the server TLS context");
        return NULL;
    }
    /* Go clients only send a certificate whose issuer the server lists. */
    SSL_CTX_set_client_CA_list(ctx, cas);
    /* Ask for a certificate but let token clients in; a presented certificate
     * that does not verify still fails the handshake, as on a real server. */
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"atom-sim", 8);
    return ctx;
}

void tls_material_free(tls_material *m)
{
    X509_free(m->ca_cert);
    EVP_PKEY_free(m->server_key);
    X509_free(m->server_cert);
    free(m->ca_pem);
    free(m->client_cert_pem);
    free(m->client_key_pem);
    memset(m, 0, sizeof *m);
}
