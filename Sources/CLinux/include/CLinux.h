// CLinux: the Linux calls Swift cannot reach directly.
// Why this exists: glibc's variadic functions (ioctl, prctl, syscall), macros
// (CMSG_*), and system calls newer than Debian's headers (mseal) are not
// importable into Swift. Every function here is a one-line pass-through;
// logic lives in Swift (Sources/Shared). One exception, vmd_spawn_into_cgroup: code
// that runs between a clone and an execve cannot be Swift (spawn_into_cgroup.c).
#ifndef CLINUX_H
#define CLINUX_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/mman.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <sys/uio.h>
#include <sys/syscall.h>
#include <sys/statfs.h>  // statfs: a sandboxed child checks the root it joined (EmptyRoot)
#include <fcntl.h>
#include <unistd.h>
#include <termios.h>
#include <signal.h>
#include <syslog.h>
#include <spawn.h>
#include <pthread.h>
#include <stdlib.h>
#include <errno.h>
#include <linux/memfd.h>
#include <linux/falloc.h>

// Seals (F_ADD_SEALS...) need _GNU_SOURCE, which this header must not set: it
// would make glibc's types differ from the ones Swift's Glibc module sees.
extern const int VMD_F_ADD_SEALS, VMD_F_GET_SEALS, VMD_F_SEAL_SEAL, VMD_F_SEAL_SHRINK, VMD_F_SEAL_GROW, VMD_F_SEAL_WRITE;
static inline char **vmd_environ(void) { extern char **environ; return environ; }

// mseal(2) is in Linux 6.10+; Debian 12's headers predate it.
#define VMD_NR_MSEAL 462
// O_DIRECT (`cache none`): fcntl.h defines it only under _GNU_SOURCE, which the Swift
// module map does not set. Its value on x86-64 (asm-generic/fcntl.h).
#define VMD_O_DIRECT 00040000

int vmd_memfd_create(const char *name, unsigned int flags);
// pipe2 and posix_spawn_file_actions_addclosefrom_np are _GNU_SOURCE (see above).
int vmd_pipe2(int fds[2], int flags);
int vmd_spawn_closefrom(posix_spawn_file_actions_t *actions, int from);
// POSIX_SPAWN_SETSID is _GNU_SOURCE too: the child starts in a session of its own.
extern const short VMD_POSIX_SPAWN_SETSID;
// posix_spawn's work, but with the child started inside the cgroup v2 directory `cgroup`
// (clone3, CLONE_INTO_CGROUP): spawn_into_cgroup.c says why it is C. Returns the pid, or
// -errno: -ENOSYS, -EINVAL or -E2BIG where the kernel has no clone3 or CLONE_INTO_CGROUP.
// It does not wait for the child's execve: `*exec_report` is a descriptor for
// vmd_spawn_exec_result, which does (0 once the program runs; -errno, the child reaped, if not).
// `namespaces[i]`, unless -1, goes to the child as descriptor 5 + i (SharedNamespace.all).
#define VMD_CHILD_NAMESPACES 2
int vmd_spawn_into_cgroup(const char *path, char *const argv[], char *const envp[], int cgroup, int stdin_fd, int channel,
                          int log, const int namespaces[VMD_CHILD_NAMESPACES], int *exec_report);
int vmd_spawn_exec_result(int exec_report, int pid);
int vmd_mseal(void *address, size_t length);
int vmd_ioctl_ptr(int fd, unsigned long request, void *argument);
int vmd_ioctl_int(int fd, unsigned long request, unsigned long argument);
int vmd_prctl(int option, unsigned long arg2, unsigned long arg3, unsigned long arg4, unsigned long arg5);
int vmd_fcntl_int(int fd, int command, int argument);

// QEMU's image locks (`QemuImageLocks`): open file description (OFD) read locks on single
// bytes, which fcntl.h declares only under _GNU_SOURCE. Lock: 0 or -1 with errno. Test: 1 if
// another open file holds a lock there, 0 if none, -1 with errno.
int vmd_ofd_read_lock_byte(int fd, off_t byte);
int vmd_ofd_byte_is_locked(int fd, off_t byte);

// Disk images (virtio-blk discard and write-zeroes): fallocate(2) and SEEK_DATA/SEEK_HOLE are
// declared by glibc only under _GNU_SOURCE (see the seals note above). FALLOC_FL_* come from
// <linux/falloc.h>, included above.
int vmd_fallocate(int fd, int mode, off_t offset, off_t length);
extern const int VMD_SEEK_DATA, VMD_SEEK_HOLE;

// Tap devices (virtio-net): the TUN* ioctl numbers are _IOW() expressions, which Swift cannot
// import, and <linux/if_tun.h> stays out of this header so Swift sees only these constants.
// BLKGETSIZE64 (linux/fs.h): a block device's size in bytes.
extern const unsigned long VMD_BLKGETSIZE64;
extern const unsigned long VMD_TUNSETIFF, VMD_TUNSETOFFLOAD, VMD_TUNSETVNETHDRSZ, VMD_TUNGETVNETHDRSZ, VMD_TUNSETQUEUE;
extern const unsigned int VMD_IFF_TAP, VMD_IFF_NO_PI, VMD_IFF_VNET_HDR, VMD_IFF_MULTI_QUEUE, VMD_IFF_ATTACH_QUEUE,
    VMD_IFF_DETACH_QUEUE;
extern const unsigned int VMD_TUN_F_CSUM, VMD_TUN_F_TSO4, VMD_TUN_F_TSO6, VMD_TUN_F_TSO_ECN, VMD_TUN_F_UFO,
    VMD_TUN_F_USO4, VMD_TUN_F_USO6;

// userfaultfd(2) (lazy restore of a snapshot): no glibc wrapper, and the UFFDIO_* request
// numbers are _IOWR() expressions. The structures come from the kernel header unchanged.
#include <linux/ioctl.h>
#include <linux/userfaultfd.h>
int vmd_userfaultfd(int flags);
static const unsigned long VMD_UFFDIO_API = UFFDIO_API, VMD_UFFDIO_REGISTER = UFFDIO_REGISTER,
                           VMD_UFFDIO_UNREGISTER = UFFDIO_UNREGISTER, VMD_UFFDIO_COPY = UFFDIO_COPY,
                           VMD_UFFDIO_ZEROPAGE = UFFDIO_ZEROPAGE, VMD_UFFDIO_WAKE = UFFDIO_WAKE;
static const unsigned long long VMD_UFFDIO_REGISTER_MODE_MISSING = UFFDIO_REGISTER_MODE_MISSING;
static const unsigned char VMD_UFFD_EVENT_PAGEFAULT = UFFD_EVENT_PAGEFAULT;

// Pseudo-terminals: declared by glibc only under _XOPEN_SOURCE.
int vmd_posix_openpt(int flags);
int vmd_grantpt(int fd);
int vmd_unlockpt(int fd);
int vmd_ptsname(int fd, char *buffer, size_t length);

// accept4 and struct ucred (SO_PEERCRED) are declared only under _GNU_SOURCE.
int vmd_accept4(int fd, int flags);
int vmd_peer_credentials(int fd, pid_t *pid, uid_t *uid, gid_t *gid);

// Interface configuration of taps by vmd (link up, local address, bridge).
#include <linux/sockios.h>
static const unsigned long VMD_SIOCGIFFLAGS = SIOCGIFFLAGS, VMD_SIOCSIFFLAGS = SIOCSIFFLAGS;
static const unsigned long VMD_SIOCSIFADDR = SIOCSIFADDR, VMD_SIOCSIFNETMASK = SIOCSIFNETMASK;
static const unsigned long VMD_SIOCGIFINDEX = SIOCGIFINDEX, VMD_SIOCBRADDIF = SIOCBRADDIF, VMD_SIOCSIFHWADDR = SIOCSIFHWADDR;
// A MAC in ifr_hwaddr (SIOCSIFHWADDR) is of this family; Glibc's Swift module leaves out net/if_arp.h.
#include <net/if_arp.h>
static const unsigned short VMD_ARPHRD_ETHER = ARPHRD_ETHER;

// Sandbox calls: Landlock has no glibc wrappers; unshare and setresuid need _GNU_SOURCE.
// struct landlock_ruleset_attr as of Linux 6.12 (ABI 6): Debian 12's headers (6.1) stop
// after handled_access_fs. The kernel takes a prefix of it: pass the size the ABI knows.
struct vmd_landlock_ruleset_attr {
    uint64_t handled_access_fs;   // ABI 1
    uint64_t handled_access_net;  // ABI 4
    uint64_t scoped;              // ABI 6
};
_Static_assert(sizeof(struct vmd_landlock_ruleset_attr) == 24, "landlock_ruleset_attr layout");
_Static_assert(offsetof(struct vmd_landlock_ruleset_attr, handled_access_net) == 8, "handled_access_net offset");
_Static_assert(offsetof(struct vmd_landlock_ruleset_attr, scoped) == 16, "scoped offset");
int vmd_landlock_create_ruleset(const void *attributes, size_t size, unsigned int flags);
int vmd_landlock_restrict_self(int ruleset, unsigned int flags);
int vmd_unshare(int flags);
int vmd_setns(int fd, int type);
// body(argument) on a new thread, joined: its result, or -errno if no thread could start.
// A thread's unshare leaves the caller's other threads where they are (SharedNamespace).
int vmd_call_on_new_thread(int (*body)(int), int argument);
int vmd_setresuid(uid_t uid);
int vmd_setresgid(gid_t gid);
extern const int VMD_CLONE_NEWNS, VMD_CLONE_NEWNET, VMD_CLONE_NEWIPC, VMD_CLONE_NEWUTS, VMD_CLONE_THREAD;
// An empty root for a sandboxed child: mount(2), umount2(2), pivot_root(2) (no glibc wrapper).
int vmd_mount(const char *source, const char *target, const char *type, unsigned long flags, const char *data);
int vmd_umount2(const char *target, int flags);
int vmd_pivot_root(const char *new_root, const char *put_old);
extern const unsigned long VMD_MS_RDONLY, VMD_MS_NOSUID, VMD_MS_NODEV, VMD_MS_NOEXEC, VMD_MS_REMOUNT, VMD_MS_BIND, VMD_MS_REC, VMD_MS_PRIVATE;
extern const int VMD_MNT_DETACH;

// syslog(3) is variadic: this logs one preformatted line.
void vmd_syslog(int priority, const char *line);

// SCM_RIGHTS: the CMSG_* macros are not importable.
size_t vmd_cmsg_space_for_fds(size_t count);
// Fills `control` (of `controlLength` bytes, from vmd_cmsg_space_for_fds) with one SCM_RIGHTS message.
void vmd_cmsg_put_fds(void *control, size_t controlLength, const int *fds, size_t count);
// Returns the number of fds found in the first SCM_RIGHTS message of `message` and copies
// at most `capacity` of them to `fds`.
size_t vmd_cmsg_get_fds(struct msghdr *message, int *fds, size_t capacity);

// Atomic accesses to guest memory (virtqueue indices), with the orderings virtio needs.
static inline uint16_t vmd_atomic_load_u16_acquire(const void *p) { return __atomic_load_n((const uint16_t *)p, __ATOMIC_ACQUIRE); }
static inline void vmd_atomic_store_u16_release(void *p, uint16_t v) { __atomic_store_n((uint16_t *)p, v, __ATOMIC_RELEASE); }
static inline uint32_t vmd_atomic_load_u32_acquire(const void *p) { return __atomic_load_n((const uint32_t *)p, __ATOMIC_ACQUIRE); }
static inline void vmd_atomic_store_u32_release(void *p, uint32_t v) { __atomic_store_n((uint32_t *)p, v, __ATOMIC_RELEASE); }
// The dirty-page bitmap of a live migration, shared by vm and the device processes.
static inline void vmd_atomic_or_u64(void *p, uint64_t v) { __atomic_fetch_or((uint64_t *)p, v, __ATOMIC_RELAXED); }
static inline uint64_t vmd_atomic_exchange_u64(void *p, uint64_t v) { return __atomic_exchange_n((uint64_t *)p, v, __ATOMIC_ACQ_REL); }
// Counter pages (vmctl stats): one writer per counter, vmd reads; no ordering needed.
static inline void vmd_atomic_store_u64_relaxed(void *p, uint64_t v) { __atomic_store_n((uint64_t *)p, v, __ATOMIC_RELAXED); }
static inline uint64_t vmd_atomic_load_u64_relaxed(const void *p) { return __atomic_load_n((const uint64_t *)p, __ATOMIC_RELAXED); }
static inline void vmd_atomic_add_u64_relaxed(void *p, uint64_t v) { __atomic_fetch_add((uint64_t *)p, v, __ATOMIC_RELAXED); }
static inline void vmd_memory_fence(void) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

// Variables of libc that are macros or thread-locals.
static inline int vmd_errno(void) { return errno; }

#endif
