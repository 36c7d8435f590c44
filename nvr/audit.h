/*
 * audit.h - the audit trail: an append-only log of who did what (searches,
 * playback, exports, holds, failed logins, configuration changes), kept in
 * its own LMDB environment (DATA/audit, datadir.h) and chained by hash so
 * that an edited, removed or reordered entry is found by audit_verify().
 *
 * Layout (one database "entries", one "meta"):
 *
 *   entries  key   = id, 8 bytes big-endian (ids start at 1, no gaps)
 *            value = prev[32] | hash[32] | body
 *                    body: the entry as compact JSON with sorted keys,
 *                    {"action","detail","id","remote","time_us","user"}
 *                    prev: the previous entry's hash (32 zero bytes for id 1)
 *                    hash: SHA-256(prev | body)  (libsodium)
 *   meta     "head" = last id (8 bytes big-endian) | its hash[32] |
 *                     its time_us (8 bytes big-endian)
 *
 * The body holds its own id, so an entry copied under another key breaks
 * the chain too; the head catches entries cut off the end. Whoever can
 * write the file can still rewrite the whole chain from the first changed
 * entry on: keep a copy of the head hash (audit verify prints it) somewhere
 * else to detect that.
 *
 * Appends are serialized by LMDB's write transaction, also across
 * processes (nvrd and nvrctl append to the same log), and each is synced
 * to disk before audit_append() returns. Times never go backwards in the
 * log: an entry's time is max(now, previous entry's time), so entries are
 * in time order and a time window is found by binary search on the id.
 *
 * Read transactions are not tied to threads (MDB_NOTLS): one handle serves
 * every thread. Errors are 0 or a negative errno, LMDB failures logged.
 */
#ifndef NVR_AUDIT_H
#define NVR_AUDIT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AUDIT_HASH_BYTES 32
#define AUDIT_MAX_USER 64          /* bytes, NUL included */
#define AUDIT_MAX_ACTION 32
#define AUDIT_MAX_REMOTE 64
#define AUDIT_MAX_BODY (64u << 10) /* a larger detail is refused: -E2BIG */
#define AUDIT_QUEUE_MAX 4096       /* queued entries; more wait for the disk */

struct audit;

/* One entry as read back. `detail` and `body` live until the callback that
 * received the entry returns. */
struct audit_entry {
	uint64_t id;
	int64_t time_us;
	char user[AUDIT_MAX_USER];
	char action[AUDIT_MAX_ACTION];
	char remote[AUDIT_MAX_REMOTE];   /* "" when unknown */
	json_t *detail;                  /* an object, borrowed */
	uint8_t prev[AUDIT_HASH_BYTES], hash[AUDIT_HASH_BYTES];
	const char *body;                /* the hashed bytes, not NUL-terminated */
	size_t body_len;
};

/* Opens (creating, mode 0700) the log in directory `dir`. */
int audit_open(const char *dir, struct audit **out);
void audit_close(struct audit *a);

/* Appends an entry and returns its id in *id (may be NULL). user and
 * action are required (printable, shorter than the limits above); remote
 * may be NULL or ""; detail may be NULL (stored as {}) and is borrowed.
 * Never pass a password or other secret in detail. */
int audit_append(struct audit *a, const char *user, const char *action, const char *remote,
                 json_t *detail, uint64_t *id);

/* Like audit_append, for reads whose answer must not wait for a disk sync
 * (searches, playback, failed logins): the entry is checked and queued, and
 * a committer thread appends queued entries in order, a batch per
 * transaction (one sync). The caller does not learn the id. Entries are on
 * disk after the batch commits (one sync later; audit_flush waits for it);
 * a crash may lose the entries of the batch being written. Returns 0 or
 * -EINVAL (bad text, detail not an object), -ENOMEM, -ESHUTDOWN (closing).
 * A full queue (AUDIT_QUEUE_MAX) makes the caller wait. */
int audit_append_queued(struct audit *a, const char *user, const char *action,
                        const char *remote, json_t *detail);

/* Waits until every entry queued before the call is committed (or lost,
 * logged). audit_list, audit_verify and audit_close flush first. */
void audit_flush(struct audit *a);

/* Which entries audit_list() visits: ids > after_id, times in
 * [from_us, to_us) (to_us 0: no end), at most limit (0: no limit). */
struct audit_query {
	int64_t from_us, to_us;
	uint64_t after_id;
	uint64_t limit;
};

/* Calls fn for each matching entry in id order; stops when fn returns
 * non-zero (that value is returned). *more (may be NULL) tells whether
 * entries beyond `limit` exist. An entry that cannot be decoded ends the
 * listing with -EBADMSG (run audit_verify). */
typedef int (*audit_each_fn)(void *user, const struct audit_entry *e);
int audit_list(struct audit *a, const struct audit_query *q, audit_each_fn fn, void *user,
               bool *more);

/* The result of a walk over the whole chain. */
struct audit_report {
	bool ok;
	uint64_t entries;                 /* entries walked that verified */
	uint64_t last_id;                 /* last good entry's id (0: none) */
	uint8_t head[AUDIT_HASH_BYTES];   /* last good entry's hash */
	uint64_t broken_id;               /* first broken entry, when !ok */
	char reason[160];                 /* why, when !ok */
};

/* Walks every entry from id 1: each must decode, carry its key's id, follow
 * the previous id by one, hold the previous entry's hash and its own
 * correct hash; the last one must be the recorded head. Returns 0 with the
 * report filled (ok or not), or a negative errno when the log cannot be
 * read at all. */
int audit_verify(struct audit *a, struct audit_report *r);

/* Hex of a hash into out (at least 2 * AUDIT_HASH_BYTES + 1 bytes). */
void audit_hex(const uint8_t hash[AUDIT_HASH_BYTES], char *out);

#endif
