/* systemd's readiness protocol (sd_notify): a datagram to $NOTIFY_SOCKET. Without that
 * variable (not under systemd, or Type=simple) every call does nothing. */
#ifndef ROLLOUT_NOTIFY_H
#define ROLLOUT_NOTIFY_H

#include <stdbool.h>
#include <stdint.h>

/* Sends one state string, e.g. "READY=1\nSTATUS=serving". */
bool notify_send(const char *state);
/* The watchdog interval systemd asks for in microseconds (WATCHDOG_USEC), 0 when none. */
uint64_t notify_watchdog_usec(void);

#endif
