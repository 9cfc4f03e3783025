#define _GNU_SOURCE 1
#include "CLinux.h"
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <string.h>
#include <linux/if_tun.h>
#include <linux/fs.h>

const unsigned long VMD_BLKGETSIZE64 = BLKGETSIZE64;

const int VMD_F_ADD_SEALS = F_ADD_SEALS, VMD_F_GET_SEALS = F_GET_SEALS, VMD_F_SEAL_SEAL = F_SEAL_SEAL,
          VMD_F_SEAL_SHRINK = F_SEAL_SHRINK, VMD_F_SEAL_GROW = F_SEAL_GROW, VMD_F_SEAL_WRITE = F_SEAL_WRITE;

int vmd_userfaultfd(int flags) { return (int)syscall(SYS_userfaultfd, flags); }
int vmd_memfd_create(const char *name, unsigned int flags) { return (int)syscall(SYS_memfd_create, name, flags); }
int vmd_pipe2(int fds[2], int flags) { return pipe2(fds, flags); }
int vmd_spawn_closefrom(posix_spawn_file_actions_t *actions, int from) {
    return posix_spawn_file_actions_addclosefrom_np(actions, from);
}
const short VMD_POSIX_SPAWN_SETSID = POSIX_SPAWN_SETSID;
int vmd_mseal(void *address, size_t length) { return (int)syscall(VMD_NR_MSEAL, address, length, 0UL); }
int vmd_ioctl_ptr(int fd, unsigned long request, void *argument) { return ioctl(fd, request, argument); }
int vmd_ioctl_int(int fd, unsigned long request, unsigned long argument) { return ioctl(fd, request, argument); }
int vmd_prctl(int option, unsigned long arg2, unsigned long arg3, unsigned long arg4, unsigned long arg5) {
    return prctl(option, arg2, arg3, arg4, arg5);
}
int vmd_fcntl_int(int fd, int command, int argument) { return fcntl(fd, command, argument); }

int vmd_fallocate(int fd, int mode, off_t offset, off_t length) { return fallocate(fd, mode, offset, length); }

int vmd_ofd_read_lock_byte(int fd, off_t byte) {
    struct flock lock = { .l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = byte, .l_len = 1 };
    return fcntl(fd, F_OFD_SETLK, &lock);
}

int vmd_ofd_byte_is_locked(int fd, off_t byte) {
    // A write lock conflicts with any lock another open file holds there (ours do not count).
    struct flock lock = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = byte, .l_len = 1 };
    if (fcntl(fd, F_OFD_GETLK, &lock) < 0) return -1;
    return lock.l_type != F_UNLCK;
}
const int VMD_SEEK_DATA = SEEK_DATA, VMD_SEEK_HOLE = SEEK_HOLE;

const unsigned long VMD_TUNSETIFF = TUNSETIFF, VMD_TUNSETOFFLOAD = TUNSETOFFLOAD,
                    VMD_TUNSETVNETHDRSZ = TUNSETVNETHDRSZ, VMD_TUNGETVNETHDRSZ = TUNGETVNETHDRSZ,
                    VMD_TUNSETQUEUE = TUNSETQUEUE;
const unsigned int VMD_IFF_TAP = IFF_TAP, VMD_IFF_NO_PI = IFF_NO_PI, VMD_IFF_VNET_HDR = IFF_VNET_HDR,
                   VMD_IFF_MULTI_QUEUE = IFF_MULTI_QUEUE, VMD_IFF_ATTACH_QUEUE = IFF_ATTACH_QUEUE,
                   VMD_IFF_DETACH_QUEUE = IFF_DETACH_QUEUE;
/* USO on a tap came with Linux 6.2; Debian 12's headers (6.1) do not name the flags yet. */
#ifndef TUN_F_USO4
#define TUN_F_USO4 0x20
#endif
#ifndef TUN_F_USO6
#define TUN_F_USO6 0x40
#endif
const unsigned int VMD_TUN_F_CSUM = TUN_F_CSUM, VMD_TUN_F_TSO4 = TUN_F_TSO4, VMD_TUN_F_TSO6 = TUN_F_TSO6,
                   VMD_TUN_F_TSO_ECN = TUN_F_TSO_ECN, VMD_TUN_F_UFO = TUN_F_UFO, VMD_TUN_F_USO4 = TUN_F_USO4,
                   VMD_TUN_F_USO6 = TUN_F_USO6;

int vmd_posix_openpt(int flags) { return posix_openpt(flags); }
int vmd_grantpt(int fd) { return grantpt(fd); }
int vmd_unlockpt(int fd) { return unlockpt(fd); }
int vmd_ptsname(int fd, char *buffer, size_t length) { return ptsname_r(fd, buffer, length); }

int vmd_accept4(int fd, int flags) { return accept4(fd, NULL, NULL, flags); }

int vmd_peer_credentials(int fd, pid_t *pid, uid_t *uid, gid_t *gid) {
    struct ucred credentials;
    socklen_t length = sizeof credentials;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &length) != 0) return -1;
    *pid = credentials.pid;
    *uid = credentials.uid;
    *gid = credentials.gid;
    return 0;
}

#include <sched.h>
int vmd_landlock_create_ruleset(const void *attributes, size_t size, unsigned int flags) {
    return (int)syscall(444 /* __NR_landlock_create_ruleset */, attributes, size, flags);
}
int vmd_landlock_restrict_self(int ruleset, unsigned int flags) {
    return (int)syscall(446 /* __NR_landlock_restrict_self */, ruleset, flags);
}
int vmd_unshare(int flags) { return unshare(flags); }
int vmd_setns(int fd, int type) { return setns(fd, type); }

#include <pthread.h>
// A thread's unshare moves that thread only (CLONE_NEWNS takes the thread's root and working
// directory with it), so vmd makes its children's namespaces each on a thread of its own,
// which readies the namespace, opens it and ends: vmd's other threads stay where they are.
struct vmd_thread_call { int (*body)(int); int argument; int result; };
static void *run_thread_call(void *context) {
    struct vmd_thread_call *call = context;
    call->result = call->body(call->argument);
    return NULL;
}
int vmd_call_on_new_thread(int (*body)(int), int argument) {
    struct vmd_thread_call call = { body, argument, -EIO };
    pthread_t thread;
    int error = pthread_create(&thread, NULL, run_thread_call, &call);
    if (error) return -error;
    pthread_join(thread, NULL);
    return call.result;
}
int vmd_setresuid(uid_t uid) { return setresuid(uid, uid, uid); }
int vmd_setresgid(gid_t gid) { return setresgid(gid, gid, gid); }
const int VMD_CLONE_NEWNS = CLONE_NEWNS, VMD_CLONE_NEWNET = CLONE_NEWNET, VMD_CLONE_NEWIPC = CLONE_NEWIPC,
          VMD_CLONE_NEWUTS = CLONE_NEWUTS, VMD_CLONE_THREAD = CLONE_THREAD;
int vmd_mount(const char *source, const char *target, const char *type, unsigned long flags, const char *data) {
    return mount(source, target, type, flags, data);
}
int vmd_umount2(const char *target, int flags) { return umount2(target, flags); }
int vmd_pivot_root(const char *new_root, const char *put_old) { return (int)syscall(SYS_pivot_root, new_root, put_old); }
const unsigned long VMD_MS_RDONLY = MS_RDONLY, VMD_MS_NOSUID = MS_NOSUID, VMD_MS_NODEV = MS_NODEV, VMD_MS_NOEXEC = MS_NOEXEC,
                    VMD_MS_REMOUNT = MS_REMOUNT, VMD_MS_BIND = MS_BIND, VMD_MS_REC = MS_REC, VMD_MS_PRIVATE = MS_PRIVATE;
const int VMD_MNT_DETACH = MNT_DETACH;

void vmd_syslog(int priority, const char *line) { syslog(priority, "%s", line); }

size_t vmd_cmsg_space_for_fds(size_t count) { return CMSG_SPACE(count * sizeof(int)); }

void vmd_cmsg_put_fds(void *control, size_t controlLength, const int *fds, size_t count) {
    struct msghdr message = { .msg_control = control, .msg_controllen = controlLength };
    struct cmsghdr *header = CMSG_FIRSTHDR(&message);
    header->cmsg_level = SOL_SOCKET;
    header->cmsg_type = SCM_RIGHTS;
    header->cmsg_len = CMSG_LEN(count * sizeof(int));
    memcpy(CMSG_DATA(header), fds, count * sizeof(int));
}

size_t vmd_cmsg_get_fds(struct msghdr *message, int *fds, size_t capacity) {
    size_t found = 0;
    for (struct cmsghdr *header = CMSG_FIRSTHDR(message); header != NULL; header = CMSG_NXTHDR(message, header)) {
        if (header->cmsg_level != SOL_SOCKET || header->cmsg_type != SCM_RIGHTS) continue;
        size_t count = (header->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        const int *data = (const int *)CMSG_DATA(header);
        for (size_t i = 0; i < count; i++) {
            if (found < capacity) fds[found] = data[i];
            found++;
        }
    }
    return found;
}
