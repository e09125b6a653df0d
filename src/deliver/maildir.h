/* maildir: delivery of one message into a Maildir (tmp/, fsync, rename into new/,
 * fsync new/). */
#ifndef CURSUS_MAILDIR_H
#define CURSUS_MAILDIR_H

#include <stddef.h>
#include <stdint.h>

/* Delivers head[0..hlen) (header fields to put first, or none) and len octets of the
 * file src at off (the message as queued) to mail_dir/<mailbox>/ (mailbox
 * "domain/local-part"), creating the Maildir (tmp, new, cur; 0700) when missing. The
 * body is stored as given, copied in bounded blocks. Returns 0, or an errno value; on
 * success the file name in new/ is copied to name_r (if not NULL). */
int maildir_deliver(const char *mail_dir, const char *mailbox, const char *head, size_t hlen,
		    int src, uint64_t off, size_t len, char *name_r, size_t namesz);
/* Whether an error of maildir_deliver will fail again on retry (a mailbox name that
 * cannot be a path); anything else (ENOSPC, EDQUOT, EIO, EACCES, ...) is temporary. */
int maildir_error_is_permanent(int err);

#endif
