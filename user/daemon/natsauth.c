// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <openssl/evp.h>
#include "common/log.h"
#include "common/secret.h"
#include "daemon/natsauth.h"

/* ------------------------------------------------------------ nkeys */

/* An nkey is base32 (RFC 4648, no padding) of: a prefix naming its kind,
 * 32 bytes of key, and a CRC-16/XMODEM of both, little-endian. A seed's
 * prefix is two bytes: 'S' and the kind of the key it makes (U: user). */
#define NKEY_PREFIX_SEED (18u << 3)
#define NKEY_PREFIX_USER (20u << 3)

static uint16_t crc16_xmodem(const uint8_t *p, size_t n)
{
	uint16_t crc = 0;

	while (n--) {
		crc ^= (uint16_t)(*p++ << 8);
		for (int i = 0; i < 8; i++)
			crc = crc & 0x8000 ? (uint16_t)(crc << 1 ^ 0x1021) : (uint16_t)(crc << 1);
	}
	return crc;
}

static const char b32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/* Decode base32 into out (at most cap bytes); returns the length or -1. */
static int b32_decode(const char *s, uint8_t *out, size_t cap)
{
	uint32_t acc = 0;
	int bits = 0;
	size_t n = 0;

	for (; *s; s++) {
		const char *c = strchr(b32, *s);

		if (!c)
			return -1;
		acc = acc << 5 | (uint32_t)(c - b32);
		bits += 5;
		if (bits >= 8) {
			if (n == cap)
				return -1;
			out[n++] = (uint8_t)(acc >> (bits - 8));
			bits -= 8;
		}
	}
	return (int)n;
}

static void b32_encode(const uint8_t *p, size_t n, char *out)
{
	uint32_t acc = 0;
	int bits = 0;

	for (size_t i = 0; i < n; i++) {
		acc = acc << 8 | p[i];
		bits += 8;
		while (bits >= 5) {
			*out++ = b32[(acc >> (bits - 5)) & 31];
			bits -= 5;
		}
	}
	if (bits)
		*out++ = b32[(acc << (5 - bits)) & 31];
	*out = '\0';
}

/* The user public key ("U...") of a user seed ("SU..."); -1 if it is not one. */
static int nkey_public(const char *seed, char pub[64])
{
	uint8_t raw[64], key[35], pk[32];
	size_t pk_len = sizeof(pk);
	EVP_PKEY *k = NULL;
	int n = b32_decode(seed, raw, sizeof(raw)), ret = -1;
	uint16_t crc;

	if (n != 36 || (raw[0] & 0xf8) != NKEY_PREFIX_SEED ||
	    ((raw[0] & 7) << 5 | (raw[1] & 0xf8) >> 3) != NKEY_PREFIX_USER)
		goto out;
	crc = crc16_xmodem(raw, 34);
	if (raw[34] != (crc & 0xff) || raw[35] != crc >> 8)
		goto out;
	k = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, raw + 2, 32);
	if (!k || EVP_PKEY_get_raw_public_key(k, pk, &pk_len) != 1 || pk_len != 32)
		goto out;
	key[0] = NKEY_PREFIX_USER;
	memcpy(key + 1, pk, 32);
	crc = crc16_xmodem(key, 33);
	key[33] = crc & 0xff;
	key[34] = crc >> 8;
	b32_encode(key, sizeof(key), pub);
	ret = 0;
out:
	EVP_PKEY_free(k);
	explicit_bzero(raw, sizeof(raw));
	return ret;
}

/* ------------------------------------------------------------ files */

/* The file of option opt must be readable, and private if `secret`. */
static int check_file(const char *path, const char *opt, bool secret)
{
	char what[96];
	int fd = open(path, O_RDONLY | O_CLOEXEC), ret = 0;

	if (fd < 0) {
		pr_warn("%s: cannot open %s: %s\n", opt, path, strerror(errno));
		return -1;
	}
	snprintf(what, sizeof(what), "the file of %s", opt);
	if (secret)
		ret = vg_private_file_check(fd, path, what);
	close(fd);
	return ret;
}

int vg_nats_auth_load(const struct vg_nats_files *cfg, struct vg_nats_auth *a)
{
	int ways = !!cfg->creds_file + !!cfg->nkey_file + !!cfg->user_file;
	char *line = NULL, *colon;

	memset(a, 0, sizeof(*a));
	if (ways > 1) {
		pr_warn("give one of --export-nats-creds, --export-nats-nkey and "
			"--export-nats-user-file\n");
		return -1;
	}
	if (!cfg->cert_file != !cfg->key_file) {
		pr_warn("--export-nats-cert and --export-nats-key go together\n");
		return -1;
	}
	if ((cfg->creds_file && check_file(cfg->creds_file, "--export-nats-creds", true)) ||
	    (cfg->ca_file && check_file(cfg->ca_file, "--export-nats-ca", false)) ||
	    (cfg->cert_file && check_file(cfg->cert_file, "--export-nats-cert", false)) ||
	    (cfg->key_file && check_file(cfg->key_file, "--export-nats-key", true)))
		return -1;
	if (cfg->nkey_file) {
		line = vg_secret_read(cfg->nkey_file, "--export-nats-nkey");
		if (!line)
			return -1;
		if (nkey_public(line, a->nkey_pub)) {
			pr_warn("--export-nats-nkey: %s does not hold a user nkey seed (SU..., as "
				"'nk -gen user' writes)\n", cfg->nkey_file);
			goto fail;
		}
	}
	if (cfg->user_file) {
		line = vg_secret_read(cfg->user_file, "--export-nats-user-file");
		if (!line)
			return -1;
		colon = strchr(line, ':');
		if (colon) {
			*colon = '\0';
			a->user = strdup(line);
			a->password = strdup(colon + 1);
		} else {
			a->token = strdup(line);
		}
		if (colon ? !a->user || !a->password || !*a->user : !a->token) {
			pr_warn("--export-nats-user-file: %s: expected USER:PASSWORD or a token\n",
				cfg->user_file);
			goto fail;
		}
	}
	if (line)
		explicit_bzero(line, strlen(line));
	free(line);
	return 0;
fail:
	explicit_bzero(line, strlen(line));
	free(line);
	vg_nats_auth_free(a);
	return -1;
}

static void free_secret(char **s)
{
	if (*s)
		explicit_bzero(*s, strlen(*s));
	free(*s);
	*s = NULL;
}

void vg_nats_auth_free(struct vg_nats_auth *a)
{
	free_secret(&a->user);
	free_secret(&a->password);
	free_secret(&a->token);
}

natsStatus vg_nats_auth_apply(natsOptions *o, const struct vg_nats_files *cfg,
			      const struct vg_nats_auth *a)
{
	natsStatus s = NATS_OK;

	if (cfg->ca_file || cfg->cert_file)
		s = natsOptions_SetSecure(o, true);
	if (s == NATS_OK && cfg->ca_file)
		s = natsOptions_LoadCATrustedCertificates(o, cfg->ca_file);
	if (s == NATS_OK && cfg->cert_file)
		s = natsOptions_LoadCertificatesChain(o, cfg->cert_file, cfg->key_file);
	if (s == NATS_OK && cfg->creds_file)
		s = natsOptions_SetUserCredentialsFromFiles(o, cfg->creds_file, NULL);
	if (s == NATS_OK && cfg->nkey_file)
		s = natsOptions_SetNKeyFromSeed(o, a->nkey_pub, cfg->nkey_file);
	if (s == NATS_OK && a->user)
		s = natsOptions_SetUserInfo(o, a->user, a->password);
	if (s == NATS_OK && a->token)
		s = natsOptions_SetToken(o, a->token);
	return s;
}

const char *vg_nats_why(natsStatus s)
{
	const char *t = nats_GetLastError(NULL), *p;

	if (!t || !*t)
		return natsStatus_GetText(s);
	if (*t == '(' && (p = strstr(t, "): ")))
		t = p + 3;
	return t;
}
