/*
 * tls_material.h — the certificates `atom sim --tls` generates in memory.
 *
 * tls_material_generate makes a fresh CA, a server certificate for
 * 127.0.0.1 / localhost signed by it, a client certificate (CN
 * atom-sim-admin, O system:masters) signed by it, and a random bearer token.
 * Nothing touches the disk here; the caller decides what to write.
 *
 * Ownership: the caller owns the tls_material (usually on its stack) and
 * releases everything in it with tls_material_free, which also works on a
 * zeroed or half-filled struct. PEM strings are NUL-terminated heap copies.
 */
#ifndef ATOM_RUNTIME_TLS_MATERIAL_H
#define ATOM_RUNTIME_TLS_MATERIAL_H

#include <openssl/ssl.h>

#include "error.h"

#define TLS_TOKEN_MAX 128

typedef struct tls_material {
    X509 *ca_cert;
    EVP_PKEY *server_key;
    X509 *server_cert;
    char *ca_pem;          /* CA certificate, PEM */
    char *client_cert_pem; /* client certificate, PEM */
    char *client_key_pem;  /* client private key, PEM (PKCS#8) */
    char token[TLS_TOKEN_MAX + 1];
} tls_material;

/* Fills m (which must be zeroed). token: a fixed bearer token, or NULL for
 * a random one. On failure m may be half filled: call tls_material_free. */
int tls_material_generate(tls_material *m, const char *token, atom_error *err);

/* A server SSL_CTX presenting the server certificate and asking (not
 * requiring) a client certificate verified against the CA. */
SSL_CTX *tls_material_server_ctx(const tls_material *m, atom_error *err);

/* base64 (standard alphabet, no newlines) of s; caller frees. */
char *tls_base64(const char *s, size_t len);

void tls_material_free(tls_material *m);

#endif
