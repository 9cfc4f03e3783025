/* liburing.h defines _XOPEN_SOURCE and _GNU_SOURCE when they are not defined yet, which
 * would make it see glibc's headers differently from Swift's Glibc module. Reaching
 * glibc's headers first, with the module's own feature macros, keeps them the same. */
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <signal.h>
#include <liburing.h>
