/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * How the daemon proves who it is to NATS and checks who NATS is
 * (docs/fleet.md#authentication-and-tls), each from a file so that no
 * secret is on the command line: a user credentials file (JWT and seed,
 * `--export-nats-creds`), an nkey seed (`--export-nats-nkey`), a user and
 * password or a token (`--export-nats-user-file`); the CA that signs the
 * servers' certificates (`--export-nats-ca`) and a client certificate and
 * key (`--export-nats-cert`, `--export-nats-key`). Files that hold secrets
 * must be private (common/secret.h). One set serves every NATS connection
 * of the daemon: the export's and the lease replication's (lease_repl.h).
 * Also the text of a libnats failure, as every NATS user of vigil says it
 * (vg_nats_why: the export, the lease replication, `vigil fleet`).
 */
#ifndef VIGIL_NATSAUTH_H
#define VIGIL_NATSAUTH_H

#include <nats/nats.h>

#include <stdbool.h>

/* The files the options name; NULL: not given. */
struct vg_nats_files {
	const char *creds_file, *nkey_file, *user_file;
	const char *ca_file, *cert_file, *key_file;
};

static inline bool vg_nats_files_any(const struct vg_nats_files *f)
{
	return f->creds_file || f->nkey_file || f->user_file || f->ca_file || f->cert_file ||
	       f->key_file;
}

/* What the files gave, read once at start. */
struct vg_nats_auth {
	char nkey_pub[64]; /* the public key of --export-nats-nkey's seed */
	char *user, *password, *token; /* --export-nats-user-file */
};

/* Check the files the options name (readable, private where they hold a
 * secret, not two ways to authenticate) and read what is read once into a.
 * -1 after one line; nothing is kept then. */
int vg_nats_auth_load(const struct vg_nats_files *f, struct vg_nats_auth *a);
void vg_nats_auth_free(struct vg_nats_auth *a);
/* Set them on a connection's options (certificates and credentials files
 * are read by libnats now, and again at each connect). */
natsStatus vg_nats_auth_apply(natsOptions *o, const struct vg_nats_files *f,
			      const struct vg_nats_auth *a);

/* libnats' own description of the last failure in this thread, without
 * its "(file.c:line): " prefix; the status's text when it has none. */
const char *vg_nats_why(natsStatus s);

#endif
