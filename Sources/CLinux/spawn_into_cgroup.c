// The one piece of CLinux that is more than a pass-through: starting a child straight
// into a cgroup (clone3 with CLONE_INTO_CGROUP, Linux 5.7+), which glibc 2.36's posix_spawn
// cannot do (posix_spawnattr_setcgroup_np came with 2.39). Joining the cgroup afterwards by
// writing cgroup.procs waits for an RCU grace period: 6-13 ms per VM start, measured here.
// What runs in the child between the clone and execve must be plain system calls (vmd has
// threads; the child has only this one, and no lock another held may be taken), which
// Swift cannot promise: so it is C, and it does exactly what ChildProcess asks of
// posix_spawn: stdin, the channel on fd 3, the log on 1 and 2, the shared namespaces on 5
// and 6 where given, every other descriptor closed, no signal blocked or handled, a
// session of its own.
#define _GNU_SOURCE 1
#include "CLinux.h"
#include <linux/sched.h>
#include <string.h>

#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif
#ifndef SYS_clone3
#define SYS_clone3 435
#endif
#ifndef SYS_close_range
#define SYS_close_range 436
#endif

// The descriptor numbers the child gets; every source is at or above 10 (the caller lifts
// them there), so no dup2 below overwrites one still to be moved.
enum { CHILD_CHANNEL = 3, CHILD_ERROR_PIPE = 4, CHILD_FIRST_NAMESPACE = 5 };

// Only async-signal-safe calls (dup2, sigaction, sigprocmask, setsid, execve, write,
// _exit) and raw system calls: glibc's wrappers of those touch no lock and no heap.
static void child_after_clone(const char *path, char *const argv[], char *const envp[], int stdin_fd, int channel,
                              int log, const int namespaces[VMD_CHILD_NAMESPACES], int error_pipe) {
    int error = 0;
    // Where a failure is told: the pipe's own number until it is on CHILD_ERROR_PIPE.
    int report = error_pipe;
    if (dup2(stdin_fd, STDIN_FILENO) < 0 || dup2(log, STDOUT_FILENO) < 0 || dup2(log, STDERR_FILENO) < 0
        || dup2(channel, CHILD_CHANNEL) < 0 || dup3(error_pipe, CHILD_ERROR_PIPE, O_CLOEXEC) < 0) {
        error = errno;
    } else {
        report = CHILD_ERROR_PIPE;
        // Each namespace given on its number; a number none was given for is closed.
        for (int slot = 0; slot < VMD_CHILD_NAMESPACES && !error; slot++) {
            if (namespaces[slot] >= 0 ? dup2(namespaces[slot], CHILD_FIRST_NAMESPACE + slot) < 0
                                      : close(CHILD_FIRST_NAMESPACE + slot) < 0 && errno != EBADF) error = errno;
        }
        if (!error && syscall(SYS_close_range, CHILD_FIRST_NAMESPACE + VMD_CHILD_NAMESPACES, ~0U, 0) < 0) error = errno;
    }
    // execve resets handled signals, not ignored ones: every disposition back to the
    // default, then nothing blocked (the parent blocked everything around the clone).
    struct sigaction defaults;
    memset(&defaults, 0, sizeof defaults);
    defaults.sa_handler = SIG_DFL;
    for (int signal = 1; signal < NSIG && !error; signal++) {
        if (signal != SIGKILL && signal != SIGSTOP) sigaction(signal, &defaults, NULL);  // glibc's own two refuse: fine
    }
    sigset_t none;
    sigemptyset(&none);
    if (!error && sigprocmask(SIG_SETMASK, &none, NULL) < 0) error = errno;
    if (!error && setsid() < 0) error = errno;
    if (!error) {
        execve(path, argv, envp);
        error = errno;
    }
    // Tell the parent why, through the pipe execve would have closed.
    ssize_t ignored = write(report, &error, sizeof error);
    (void)ignored;
    _exit(127);
}

int vmd_spawn_into_cgroup(const char *path, char *const argv[], char *const envp[], int cgroup, int stdin_fd, int channel,
                          int log, const int namespaces[VMD_CHILD_NAMESPACES], int *exec_report) {
    int pipe_fds[2];
    if (pipe2(pipe_fds, O_CLOEXEC) < 0) return -errno;
    // Lift the error pipe above the child's fixed numbers too.
    int error_pipe = fcntl(pipe_fds[1], F_DUPFD_CLOEXEC, 10);
    close(pipe_fds[1]);
    if (error_pipe < 0) {
        int saved = errno;
        close(pipe_fds[0]);
        return -saved;
    }
    struct clone_args args;
    memset(&args, 0, sizeof args);
    // No CLONE_VM: the child has its own copy of memory (and of this stack). No CLONE_VFORK
    // either: this thread goes on while the child execs (vmd starts a VM's processes one
    // after another, and each exec took 1.5-3 ms here); vmd_spawn_exec_result waits for it.
    args.flags = CLONE_INTO_CGROUP;
    args.exit_signal = SIGCHLD;
    args.cgroup = (uint64_t)cgroup;
    sigset_t all, saved_mask;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &saved_mask);
    long pid = syscall(SYS_clone3, &args, sizeof args);
    if (pid == 0) child_after_clone(path, argv, envp, stdin_fd, channel, log, namespaces, error_pipe);
    int clone_error = errno;
    pthread_sigmask(SIG_SETMASK, &saved_mask, NULL);
    close(error_pipe);
    if (pid < 0) {
        close(pipe_fds[0]);
        return -clone_error;
    }
    *exec_report = pipe_fds[0];
    return (int)pid;
}

int vmd_spawn_exec_result(int exec_report, int pid) {
    int child_error = 0;
    ssize_t got;
    do {
        got = read(exec_report, &child_error, sizeof child_error);
    } while (got < 0 && errno == EINTR);
    close(exec_report);
    if (got == (ssize_t)sizeof child_error) {
        // It never ran the program: reap it here, and say why.
        while (waitpid((pid_t)pid, NULL, 0) < 0 && errno == EINTR) {}
        return -(child_error ? child_error : EIO);
    }
    return 0;
}
