/* session: one SMTP server session. The state machine, the command table with its
 * policy flags and the one dispatcher live in session.c; each command's check and
 * proceed steps in cmd_*.c. Shared here only between those files. */
#ifndef CURSUS_SESSION_H
#define CURSUS_SESSION_H

#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>
#include <openssl/ssl.h>

#include "config/config.h"
#include "metrics/metrics.h"
#include "queue/envelope.h"
#include "sasl/sasl.h"
#include "smtp/command.h"
#include "smtp/params.h"
#include "util/linereader.h"
#include "util/netlist.h"
#include "util/log.h"

struct event_base;
struct event;
struct conn;
struct workers;
struct queue;
struct auth_client;
struct auth_client_sasl;
struct authlimit;
struct trace_rules;
struct addrcount;

/* What every session shares: the daemon's context. cfg, tls and trace are the
 * current ones, replaced by a reload (daemon/reload.c); a session takes its own hold
 * of cfg and tls when it starts, so its settings never change under it. */
struct smtp_server {
	struct event_base *base;
	const struct config *cfg;
	SSL_CTX *tls;
	struct workers *workers;
	struct queue *queue;
	struct auth_client *auth;   /* the credential store, in cursus-auth */
	struct authlimit *authlimit;
	struct trace_rules *trace;   /* swapped on SIGHUP */
	struct dkim_keys *dkim;      /* signing keys (dkim/dkim_keys.h); swapped on SIGHUP */
	struct smtp_listener **listeners;
	size_t n_listeners;
	struct event *accept_resume; /* out of descriptors: accepting resumes later */
	struct addrcount *clients;   /* sessions per client address */
	struct netlist client_exempt; /* not held to max_client_sessions */
	size_t inflight;             /* message buffers of all sessions, octets */
	uint64_t next_id;
	unsigned nsessions;
};

/* One listening socket and its sessions' count (for max_sessions). */
struct smtp_listener {
	struct smtp_server *srv;
	const struct config *cfg;    /* held; lc is one of its listeners */
	const struct listener_conf *lc;
	struct evconnlistener *evl;
	unsigned nsessions;
	struct session *sessions;    /* its sessions, for stress mode to shorten their timeouts */
	int stress;                  /* near max_sessions: timeouts shrink (deadline.c) */
};

enum smtp_state {
	S_INIT,        /* greeted, no EHLO/HELO yet (also after STARTTLS) */
	S_READY,       /* EHLO done, no transaction */
	S_MAIL,        /* MAIL accepted */
	S_RCPT,        /* at least one RCPT accepted */
	S_DATA,        /* reading DATA lines */
	S_BDAT,        /* reading a BDAT chunk */
	S_AUTH,        /* AUTH: waiting for the client's response to a 334 */
	S_TLS,         /* STARTTLS accepted, handshake pending */
	S_CLOSING,     /* QUIT, error or timeout: writing the last reply */
};

/* Room kept before the message for the trace and submission header fields, so the
 * queue gets header and body in one buffer without a second copy of the message. */
#define BODY_HEADROOM 4096
#define SESSION_BODY(s) ((s)->body ? (s)->body + BODY_HEADROOM : "")
/* A message longer than this is written to its queue file while it arrives, in
 * chunks of this size: a session holds a few of them, never the whole message. */
#define BODY_CHUNK (64 * 1024)

/* Why a message being received will be refused at its end. */
#define BODY_BAD_EOL   0x1   /* bare CR or LF */
#define BODY_TOO_LONG  0x2   /* a line over max_text_line */
#define BODY_TOO_BIG   0x4   /* over max_message_size */
#define BODY_NO_MEMORY 0x8   /* over the server's max_inflight_bytes */

struct session {
	struct smtp_server *srv;
	struct smtp_listener *listener;
	/* The configuration the session started with, held to its end (config_ref). */
	const struct config *cfg;
	const struct listener_conf *lc; /* in cfg */
	SSL_CTX *tls_ctx;            /* held (SSL_CTX_up_ref); NULL: no TLS */
	const struct limits *limits;
	struct conn *conn;
	char id[20];
	char addr[INET6_ADDRSTRLEN]; /* "local" on the local submission socket */
	struct sockaddr_storage sa;  /* the client, for the brute-force limiter */
	/* Local submission: who connected, from SO_PEERCRED (the kernel's word, never the
	 * client's); -1 on network listeners. */
	long peer_uid, peer_pid;
	enum smtp_state state;
	struct linereader lr;
	struct event *lifetime;      /* session_timeout */
	struct session *lprev, *lnext; /* the listener's sessions */
	struct event *deadline;      /* command, DATA phase or TLS handshake (deadline.c) */
	int deadline_kind;           /* enum deadline_kind */
	uint64_t deadline_at;        /* monotonic ms when it fires */
	size_t *client_bytes;        /* message data in flight of this client (addrcount) */
	size_t body_held;            /* what this session charged to inflight and client_bytes */
	char *helo;
	int esmtp;
	int tls;                     /* TLS is up */
	char tls_info[128];
	unsigned errors, commands;
	int trace;                   /* log every command and reply (trace.h) */
	char *user;                  /* authenticated user, NULL before AUTH */
	char *authid;                /* whose credentials logged in (user may be its authzid) */
	long long cred_gen;          /* authid's credential generation at AUTH (userdb.h) */
	long long cred_gen_pending;  /* read by the worker before the credentials are checked */
	int cred_gen_read;           /* 1 when cred_gen_pending holds the read value */
	struct sasl_channel chan;    /* channel binding and client certificate */
	struct auth_client_sasl *sx; /* the AUTH exchange under way */
	const struct sasl_mech *auth_mech;
	struct event *auth_delay;    /* a failed AUTH's reply, held back */
	int parked;                  /* waiting for a worker or the queue */
	int dead;                    /* connection gone while parked: free on resume */
	/* the transaction */
	struct envelope env;
	size_t declared_size;
	char *body;                  /* allocation: BODY_HEADROOM octets, then the message
				      * (or, once streaming, its latest part) */
	size_t body_fill, body_cap;  /* octets in body, and its room after the headroom */
	size_t body_len;             /* of the whole message so far */
	char body_tail[2];           /* its last two octets */
	struct queue_stream *stream; /* the queue file being written, once over BODY_CHUNK */
	size_t stream_prefix;        /* octets of trace fields written before the message */
	struct data_chunk *chunks;   /* handed to the stream, not yet written */
	unsigned nchunks;
	int wait_write;              /* parked until a chunk is written */
	unsigned body_bad;
	int data_crlf;               /* the last DATA line ended in CRLF: "." may end it */
	int bdat_used;               /* CHUNKING in this transaction: DATA refused */
	size_t bdat_left;            /* octets of the current chunk still to read */
	int bdat_last;
	int bdat_refuse;             /* chunk read only to be discarded */
	const struct cmd_refusal *bdat_refusal; /* the reply once it is read */
	enum smtp_state bdat_back;   /* state to return to after a refused chunk */
	char bdat_prev;              /* last octet of the previous chunk (bare CR check) */
	unsigned messages;
	unsigned nrcpts;             /* RCPT commands accepted in this transaction */
};

/* The one way to reply: "code enhanced text". enhanced may be NULL (greeting, EHLO).
 * Replies of 400 and above count as errors; at max_errors the session is closed
 * with 421 4.7.0. */
void session_reply(struct session *s, int code, const char *enhanced, const char *fmt, ...)
	PRINTF_LIKE(4, 5);
/* Multi-line reply: lines[0..n) under one code (EHLO, HELP). */
void session_reply_lines(struct session *s, int code, const char *const *lines, size_t n);
void session_close(struct session *s);
/* One protocol trace line, dir 'C' (client) or 'S' (server), when the session is
 * traced; the text is escaped. Callers pass AUTH payloads as "<hidden>". */
void session_trace(const struct session *s, char dir, const char *text, size_t len);
/* Transitions are made only here, so every change can be traced. */
void session_enter(struct session *s, enum smtp_state next);
/* Drops the transaction (RSET, end of message, STARTTLS). */
void session_reset_tx(struct session *s);
/* Message data held while it arrives, charged to the server's max_inflight_bytes and
 * the client's max_client_inflight_bytes: -1 (nothing charged) when over either. */
int session_inflight_charge(struct session *s, size_t n);
void session_inflight_release(struct session *s);
/* n octets the session held go to the queue writer: they stay charged to the server
 * (released by the writer's completion), no longer to the session or its client. */
void session_inflight_handoff(struct session *s, size_t n);
/* Parking: no input is read while a worker or the queue has the session. */
void session_park(struct session *s);
/* Returns 0 if the session may go on, -1 if it was freed (connection gone). */
int session_unpark(struct session *s);
/* Resumes reading pipelined input after an asynchronous step. */
void session_process(struct session *s);

/* A command refused by the session's policy (the command table's flags). */
struct cmd_refusal {
	int code;
	const char *enhanced;
	const char *text;
	enum metrics_reject reject;  /* counted as, when it refuses a transaction command */
};
/* Why the command may not run now (state, TLS, AUTH, listener), or NULL. The
 * dispatcher asks before every handler; a command that must first read what follows
 * it (BDAT) asks itself and replies once that is read. */
const struct cmd_refusal *session_cmd_refusal(const struct session *s, enum smtp_verb verb);
void session_reply_refusal(struct session *s, const struct cmd_refusal *r);
/* Counts a refused MAIL, RCPT, DATA, BDAT or message (metrics.h), beside its reply. */
void session_rejected(const struct session *s, enum metrics_reject why);

/* A session on the local submission socket (cursus sendmail): its caller is a local
 * user known by uid; it may send to any domain, as any sender, and the uid is
 * recorded in the Received: field and the log. */
#define SESSION_LOCAL(s) ((s)->lc->role == ROLE_LOCAL)

/* Policy predicates: EHLO advertises exactly what these accept. */
int session_can_starttls(const struct session *s);
/* The SASL mechanisms offered now, as MECH_BIT()s: EHLO lists exactly these and AUTH
 * accepts exactly these. */
unsigned session_auth_offered(const struct session *s);

/* Accepts a connection on a listener (takes fd). */
void session_accept(struct smtp_listener *l, int fd, const struct sockaddr *sa, int salen);

/* Command handlers (cmd_*.c): args exclude the verb. */
void cmd_ehlo(struct session *s, const char *args, size_t len);
void cmd_helo(struct session *s, const char *args, size_t len);
void cmd_mail(struct session *s, const char *args, size_t len);
void cmd_rcpt(struct session *s, const char *args, size_t len);
void cmd_data(struct session *s, const char *args, size_t len);
void cmd_bdat(struct session *s, const char *args, size_t len);
void cmd_rset(struct session *s, const char *args, size_t len);
void cmd_noop(struct session *s, const char *args, size_t len);
void cmd_quit(struct session *s, const char *args, size_t len);
void cmd_help(struct session *s, const char *args, size_t len);
void cmd_vrfy(struct session *s, const char *args, size_t len);
void cmd_expn(struct session *s, const char *args, size_t len);
void cmd_starttls(struct session *s, const char *args, size_t len);
void cmd_auth(struct session *s, const char *args, size_t len);

/* A line of an AUTH exchange (cmd_auth.c). */
void cmd_auth_line(struct session *s, const char *line, size_t len);
/* A bad line inside an exchange (too long, bare CR or LF) ends it. */
void cmd_auth_line_error(struct session *s, enum line_status st);
/* Frees what AUTH holds (session end). */
void cmd_auth_cleanup(struct session *s);

/* Message body reception (cmd_data.c). */
void cmd_data_line(struct session *s, enum line_status st, const char *line, size_t len);
void cmd_bdat_bytes(struct session *s, const char *p, size_t n);
/* Drops the message being received: buffers, and its queue file if one was begun. */
void data_reset(struct session *s);

/* Deadlines that trickled bytes do not extend, and stress mode (deadline.c). */
enum deadline_kind { DL_NONE, DL_COMMAND, DL_DATA, DL_HANDSHAKE };
void session_deadline_init(struct session *s);
void session_deadline_free(struct session *s);
/* Arms the deadline of this kind (DL_NONE clears it). */
void session_deadline_set(struct session *s, enum deadline_kind kind);
/* The deadline that goes with entering state next (data phase, handshake, or none). */
void session_deadline_state(struct session *s, enum smtp_state next);
/* After reading input in a command state: a partial line starts the command's
 * deadline; a whole line (done) ends it. */
void session_deadline_input(struct session *s, int line_done);
/* A timeout as configured, or shrunk while the listener is under stress. */
unsigned session_timeout_ms(const struct session *s, unsigned configured_ms);
/* The listener's count changed: enters or leaves stress mode. */
void session_stress_update(struct smtp_listener *l);

/* Received header (received.c): malloc'd, CRLF-terminated lines. */
char *received_header(const struct session *s);

#endif
