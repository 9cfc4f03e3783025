// libevent 2.1 (Debian libevent-dev): the event loop of every swift-vmd process.
// The system headers come first: event-config.h defines _GNU_SOURCE, which must
// not change the libc types Swift's Glibc module already has.
#include <sys/types.h>
#include <sys/time.h>
#include <sys/socket.h>
#include <sys/select.h>
#include <stdio.h>
#include <stdint.h>
#include <stddef.h>
#include <stdarg.h>
#include <inttypes.h>
#include <errno.h>
#include <netdb.h>
#include <time.h>
#include <event2/event.h>
