/* qfile: the on-disk format of a queued message, and of its "done" sidecar.
 *
 *   CURSUS-QUEUE 3
 *   id 0123456789abcdef
 *   received 1700000000
 *   helo <xtext>              string fields: RFC 3461 xtext, so any byte is safe;
 *   client <xtext>            a line is omitted when its field is NULL
 *   from <xtext>              ("from " with an empty value is the null sender)
 *   auth <xtext>
 *   ret full|hdrs             omitted when unset
 *   envid <xtext>
 *   bodytype 7bit|8bitmime|binarymime
 *   smtputf8 0|1
 *   tlsreq requiretls|no      RFC 8689: MAIL FROM's REQUIRETLS, or "TLS-Required: No";
 *                             omitted when neither (files before it are read as such)
 *   rcpt <notify> <address> <orcpt> <mailbox>   one per recipient; "-" is NULL
 *   body
 *   <length bytes>
 *   prepend <xtext>           the trailer: zero or more lines, after the body
 *   end <length> <crc32 of every byte before "end", 8 lower-case hex digits>
 *
 * Version 2 puts the body's length in the last line, so a message can be written to
 * its file while it arrives (queue.c streams it). Version 1, still read, had
 * "body <length>" and "end <crc32>" instead.
 *
 * Version 3 adds the trailer: what is known only once the whole message has been read
 * (its DKIM signatures, which hash the body) yet must come first when it is sent.
 * "prepend" lines hold header fields (with their CRLFs) that every delivery emits
 * before the body, in order; the body itself stays as it arrived, written once. The
 * alternatives cost more: a head rewritten at the end copies the whole body again
 * (queue.c's rehead does, for the rare RCPT after BDAT), and room reserved in the head
 * must guess the signatures' size. Version 2 files (no trailer) are still read.
 *
 * The file never changes once committed. Delivery progress lives beside it in
 * "<id>.done": one line "<index> done" per finished recipient, appended and fsync'd. */
#ifndef CURSUS_QFILE_H
#define CURSUS_QFILE_H

#include <stddef.h>
#include <stdint.h>

struct envelope;

#define QFILE_MAGIC "CURSUS-QUEUE 3"
#define QFILE_MAGIC_V2 "CURSUS-QUEUE 2"
#define QFILE_MAGIC_V1 "CURSUS-QUEUE 1"
/* The trailer is read into memory: more than this is no file of ours. */
#define QFILE_TRAILER_MAX (256u * 1024)
/* Version 1: "\nend " + 8 hex digits + "\n" */
#define QFILE_TAIL_LEN 14
/* Version 2: "\nend " + up to 20 digits + " " + 8 hex digits + "\n" */
#define QFILE_END_MAX 35

uint32_t qfile_crc32(uint32_t crc, const void *p, size_t n);

/* Everything up to and including the "body" line (malloc'd). */
char *qfile_encode_head(const struct envelope *env, size_t *len_r);
/* The trailer for header fields to prepend (NULL or "": none): malloc'd, *len_r
 * octets, to be written after the body and covered by the CRC. */
char *qfile_encode_trailer(const char *prepend, size_t *len_r);
/* Writes the bytes that follow the body and trailer (returns how many); crc covers
 * head, body and trailer. */
size_t qfile_encode_end(uint32_t crc, size_t bodylen, char end[QFILE_END_MAX + 1]);
/* Version 1's QFILE_TAIL_LEN bytes after the body (to make version 1 files in tests). */
void qfile_encode_tail(uint32_t crc, char tail[QFILE_TAIL_LEN + 1]);
/* The whole file in one malloc'd buffer (env->prepend goes into the trailer). */
char *qfile_encode(const struct envelope *env, const char *body, size_t bodylen,
		   size_t *len_r);

/* Parses a whole file. On success returns 0, fills *env_r (free with envelope_clear;
 * every rcpt's done is 0; prepend from the trailer) and points *body_r into buf. Returns -1 for anything torn,
 * corrupted or malformed, with *env_r zeroed. */
int qfile_decode(const char *buf, size_t len, struct envelope *env_r,
		 const char **body_r, size_t *bodylen_r);

/* Checks the file name (relative to dirfd) as qfile_decode does, reading it in small
 * blocks, and fills *env_r and *bodylen_r, without ever holding the body in memory.
 * Returns 0, EBADMSG when torn or malformed, or another errno value. */
int qfile_load_env_at(int dirfd, const char *name, struct envelope *env_r,
		      size_t *bodylen_r);

/* As qfile_load_env_at, and on success leaves the file open for reading: *fd_r, the
 * body at *off_r (*bodylen_r octets). */
int qfile_open_at(int dirfd, const char *name, struct envelope *env_r, int *fd_r,
		  uint64_t *off_r, size_t *bodylen_r);

/* Reads the whole file name (relative to dirfd) into a malloc'd buffer (NUL added
 * after len bytes). Returns 0 or an errno value. */
int qfile_read_at(int dirfd, const char *name, char **buf_r, size_t *len_r);

/* Marks the recipients listed in a sidecar's contents as done. A torn last line is
 * ignored (that recipient is delivered again: at least once, never lost); so are
 * malformed lines and indexes out of range. Returns how many were marked. */
size_t qfile_done_apply(const char *buf, size_t len, struct envelope *env);
/* Reads the sidecar at path and applies it; a missing file is no progress.
 * Returns 0 or an errno value. */
int qfile_done_load(const char *path, struct envelope *env);
/* Appends index to the sidecar at path and fsyncs it; when the file is new, also
 * fsyncs dirfd (its directory) unless dirfd < 0. Returns 0 or an errno value. */
int qfile_done_append(const char *path, int dirfd, size_t index);

/* Moves msg/<name> (msgfd is msg/ of the queue at qdir) into <qdir>/corrupt/ and logs
 * why; on failure it stays and the failure is logged. */
void qfile_move_corrupt(const char *qdir, int msgfd, const char *name, const char *why);

#endif
