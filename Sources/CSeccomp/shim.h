// libseccomp (Debian libseccomp-dev): builds each child's syscall allowlist.
#include <seccomp.h>
