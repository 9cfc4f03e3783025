// CKVM: <linux/kvm.h> for Swift.
// Why this exists: the ioctl request numbers are function-like macros (_IOW, _IOWR)
// that Swift does not import, so they are re-exported here as constants.
// The KVM structures themselves are imported from the kernel header unchanged.
#ifndef CKVM_H
#define CKVM_H

#include <linux/kvm.h>
#include <stddef.h>

static const unsigned long VMD_KVM_IOCTL_GET_API_VERSION = KVM_GET_API_VERSION;
static const unsigned long VMD_KVM_IOCTL_CREATE_VM = KVM_CREATE_VM;
static const unsigned long VMD_KVM_IOCTL_CHECK_EXTENSION = KVM_CHECK_EXTENSION;
static const unsigned long VMD_KVM_IOCTL_GET_VCPU_MMAP_SIZE = KVM_GET_VCPU_MMAP_SIZE;
static const unsigned long VMD_KVM_IOCTL_GET_SUPPORTED_CPUID = KVM_GET_SUPPORTED_CPUID;
static const unsigned long VMD_KVM_IOCTL_GET_MSR_INDEX_LIST = KVM_GET_MSR_INDEX_LIST;
static const unsigned long VMD_KVM_IOCTL_CREATE_VCPU = KVM_CREATE_VCPU;
static const unsigned long VMD_KVM_IOCTL_SET_USER_MEMORY_REGION = KVM_SET_USER_MEMORY_REGION;
static const unsigned long VMD_KVM_IOCTL_SET_TSS_ADDR = KVM_SET_TSS_ADDR;
static const unsigned long VMD_KVM_IOCTL_SET_IDENTITY_MAP_ADDR = KVM_SET_IDENTITY_MAP_ADDR;
static const unsigned long VMD_KVM_IOCTL_CREATE_IRQCHIP = KVM_CREATE_IRQCHIP;
static const unsigned long VMD_KVM_IOCTL_IRQ_LINE = KVM_IRQ_LINE;
static const unsigned long VMD_KVM_IOCTL_CREATE_PIT2 = KVM_CREATE_PIT2;
static const unsigned long VMD_KVM_IOCTL_GET_PIT2 = KVM_GET_PIT2;
static const unsigned long VMD_KVM_IOCTL_SET_PIT2 = KVM_SET_PIT2;
static const unsigned long VMD_KVM_IOCTL_REINJECT_CONTROL = KVM_REINJECT_CONTROL;
static const unsigned long VMD_KVM_IOCTL_GET_CLOCK = KVM_GET_CLOCK;
static const unsigned long VMD_KVM_IOCTL_SET_CLOCK = KVM_SET_CLOCK;
static const unsigned long VMD_KVM_IOCTL_SET_GSI_ROUTING = KVM_SET_GSI_ROUTING;
static const unsigned long VMD_KVM_IOCTL_IRQFD = KVM_IRQFD;
static const unsigned long VMD_KVM_IOCTL_IOEVENTFD = KVM_IOEVENTFD;
static const unsigned long VMD_KVM_IOCTL_SIGNAL_MSI = KVM_SIGNAL_MSI;
static const unsigned long VMD_KVM_IOCTL_RUN = KVM_RUN;
static const unsigned long VMD_KVM_IOCTL_GET_REGS = KVM_GET_REGS;
static const unsigned long VMD_KVM_IOCTL_SET_REGS = KVM_SET_REGS;
static const unsigned long VMD_KVM_IOCTL_GET_SREGS = KVM_GET_SREGS;
static const unsigned long VMD_KVM_IOCTL_SET_SREGS = KVM_SET_SREGS;
static const unsigned long VMD_KVM_IOCTL_GET_MSRS = KVM_GET_MSRS;
static const unsigned long VMD_KVM_IOCTL_SET_MSRS = KVM_SET_MSRS;
static const unsigned long VMD_KVM_IOCTL_SET_CPUID2 = KVM_SET_CPUID2;
static const unsigned long VMD_KVM_IOCTL_GET_LAPIC = KVM_GET_LAPIC;
static const unsigned long VMD_KVM_IOCTL_SET_LAPIC = KVM_SET_LAPIC;
static const unsigned long VMD_KVM_IOCTL_GET_MP_STATE = KVM_GET_MP_STATE;
static const unsigned long VMD_KVM_IOCTL_SET_MP_STATE = KVM_SET_MP_STATE;
static const unsigned long VMD_KVM_IOCTL_GET_FPU = KVM_GET_FPU;
static const unsigned long VMD_KVM_IOCTL_SET_FPU = KVM_SET_FPU;
static const unsigned long VMD_KVM_IOCTL_ENABLE_CAP = KVM_ENABLE_CAP;
static const unsigned long VMD_KVM_IOCTL_SET_SIGNAL_MASK = KVM_SET_SIGNAL_MASK;
static const unsigned long VMD_KVM_IOCTL_GET_VCPU_EVENTS = KVM_GET_VCPU_EVENTS;
static const unsigned long VMD_KVM_IOCTL_SET_VCPU_EVENTS = KVM_SET_VCPU_EVENTS;
static const unsigned long VMD_KVM_IOCTL_GET_XSAVE = KVM_GET_XSAVE;
static const unsigned long VMD_KVM_IOCTL_SET_XSAVE = KVM_SET_XSAVE;
static const unsigned long VMD_KVM_IOCTL_GET_XCRS = KVM_GET_XCRS;
static const unsigned long VMD_KVM_IOCTL_SET_XCRS = KVM_SET_XCRS;
static const unsigned long VMD_KVM_IOCTL_GET_DEBUGREGS = KVM_GET_DEBUGREGS;
static const unsigned long VMD_KVM_IOCTL_SET_DEBUGREGS = KVM_SET_DEBUGREGS;
static const unsigned long VMD_KVM_IOCTL_GET_IRQCHIP = KVM_GET_IRQCHIP;
static const unsigned long VMD_KVM_IOCTL_SET_IRQCHIP = KVM_SET_IRQCHIP;
static const unsigned long VMD_KVM_IOCTL_GET_TSC_KHZ = KVM_GET_TSC_KHZ;
static const unsigned long VMD_KVM_IOCTL_GET_DIRTY_LOG = KVM_GET_DIRTY_LOG;
static const unsigned long VMD_KVM_IOCTL_SET_TSC_KHZ = KVM_SET_TSC_KHZ;

// Flag macros built from enums, which Swift does not import.
static const unsigned int VMD_KVM_IOEVENTFD_FLAG_DEASSIGN = KVM_IOEVENTFD_FLAG_DEASSIGN;
static const unsigned int VMD_KVM_IRQFD_FLAG_DEASSIGN = KVM_IRQFD_FLAG_DEASSIGN;

// Layouts Swift code relies on (it reads kvm_run through the imported struct,
// but computes the I/O data pointer from data_offset within the mapping).
_Static_assert(sizeof(struct kvm_regs) == 144, "kvm_regs layout");
_Static_assert(sizeof(struct kvm_sregs) == 312, "kvm_sregs layout");
_Static_assert(sizeof(struct kvm_cpuid_entry2) == 40, "kvm_cpuid_entry2 layout");
_Static_assert(sizeof(struct kvm_userspace_memory_region) == 32, "kvm_userspace_memory_region layout");
_Static_assert(offsetof(struct kvm_run, exit_reason) == 8, "kvm_run.exit_reason");
_Static_assert(offsetof(struct kvm_run, io) == 32, "kvm_run exit union");
_Static_assert(sizeof(struct kvm_irq_routing_entry) == 48, "kvm_irq_routing_entry layout");
_Static_assert(sizeof(struct kvm_irq_routing) == 8, "kvm_irq_routing header");

#endif
