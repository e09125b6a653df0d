/* trace: which sessions get a protocol trace in the log (every command and reply,
 * AUTH payloads as <hidden>, TLS results), chosen by client address or CIDR prefix
 * and by authenticated user: what an administrator would otherwise need a packet
 * capture for. The rules come from the configuration and from trace_file, and are
 * reloaded on SIGHUP. */
#ifndef CURSUS_TRACE_H
#define CURSUS_TRACE_H

#include <stddef.h>
#include <stdio.h>
#include <sys/socket.h>

struct config;
struct trace_rules;

/* Builds the rules from cfg's trace_clients/trace_users and the lines of
 * cfg->trace_file ("client ADDR[/PREFIX]" or "user NAME"; '#' comments; a missing
 * file is no rules). Bad entries are reported to errs as "file:line: message" and
 * skipped. Never NULL. */
struct trace_rules *trace_rules_load(const struct config *cfg, FILE *errs);
void trace_rules_free(struct trace_rules **r);
size_t trace_rules_count(const struct trace_rules *r);

int trace_match_addr(const struct trace_rules *r, const struct sockaddr *sa);
int trace_match_user(const struct trace_rules *r, const char *user);

/* Checks one client entry: 0 when it parses as an address or CIDR prefix. */
int trace_parse_client(const char *s);

#endif
