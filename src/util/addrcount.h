/* addrcount: how many sessions each client address holds, to cap one client's share
 * of the server. Loop thread only. Memory is one small node per connected address. */
#ifndef CURSUS_ADDRCOUNT_H
#define CURSUS_ADDRCOUNT_H

#include <sys/socket.h>

struct addrcount;

struct addrcount *addrcount_create(void);
void addrcount_destroy(struct addrcount **ac);
/* Counts one more session from sa and returns how many it has now. */
unsigned addrcount_inc(struct addrcount *ac, const struct sockaddr *sa);
void addrcount_dec(struct addrcount *ac, const struct sockaddr *sa);

#endif
