/* mptable.c - the CPUs the VMM says the machine has, read from its MP
 * table (Intel MultiProcessor Specification 1.4), in ring 3.
 *
 * The kit never takes its topology from CPUID in ring 3: under PVM on a
 * host without CPUID faulting (the AMD EPYC machines, design.md §8) CPUID
 * in ring 3 is not intercepted and returns the host CPU's own APIC id and
 * core count. The MP table is what swift-vmd (and SeaBIOS under QEMU)
 * builds from the VM's own vCPUs. */
#include "kit.h"
#include "smp.h"

#define MP_PROCESSOR_ENTRY 0
#define MP_PROCESSOR_SIZE  20
#define MP_OTHER_SIZE      8
#define MP_CPU_EN          0x01

/* A pointer to low physical memory (identity-mapped), hidden from GCC,
 * which otherwise takes a constant address for an empty array. */
static const uint8_t *phys(uint64_t address)
{
	uintptr_t p = (uintptr_t)address;
	__asm__("" : "+r"(p));
	return (const uint8_t *)p;
}

static int sum_zero(const uint8_t *p, size_t n)
{
	uint8_t s = 0;
	for (size_t i = 0; i < n; i++)
		s = (uint8_t)(s + p[i]);
	return s == 0;
}

/* MP spec §4: the "_MP_" floating pointer is on a 16-byte boundary in
 * the first KiB of the EBDA, the last KiB of base memory, or the BIOS ROM
 * area 0xF0000-0xFFFFF. */
static const uint8_t *find_floating(uint64_t base, uint64_t len)
{
	for (uint64_t a = base; a + 16 <= base + len; a += 16) {
		const uint8_t *p = phys(a);
		if (p[0] == '_' && p[1] == 'M' && p[2] == 'P' && p[3] == '_' && p[8] == 1 && sum_zero(p, 16))
			return p;
	}
	return NULL;
}

int mptable_read(struct mp_cpus *out)
{
	out->count = 0;
	out->total = 0;
	const uint8_t *bda_ebda = phys(0x40e);   /* BIOS data area: EBDA segment */
	uint64_t ebda = (uint64_t)(bda_ebda[0] | bda_ebda[1] << 8) << 4;
	const uint8_t *fp = NULL;
	if (ebda >= 0x80000 && ebda < 0xa0000)
		fp = find_floating(ebda, 1024);
	if (!fp)
		fp = find_floating(0x9fc00, 1024);
	if (!fp)
		fp = find_floating(0xf0000, 0x10000);
	if (!fp)
		return -1;

	uint32_t table = (uint32_t)fp[4] | (uint32_t)fp[5] << 8 | (uint32_t)fp[6] << 16 | (uint32_t)fp[7] << 24;
	const uint8_t *t = phys(table);
	if (table == 0 || table >= 0x100000 || t[0] != 'P' || t[1] != 'C' || t[2] != 'M' || t[3] != 'P')
		return -1;
	uint16_t length = (uint16_t)(t[4] | t[5] << 8);
	uint16_t entries = (uint16_t)(t[34] | t[35] << 8);
	if (length < 44 || table + length > 0x100000 || !sum_zero(t, length))
		return -1;

	const uint8_t *e = t + 44, *end = t + length;
	for (uint16_t i = 0; i < entries && e < end; i++) {
		size_t size = e[0] == MP_PROCESSOR_ENTRY ? MP_PROCESSOR_SIZE : MP_OTHER_SIZE;
		if (e + size > end)
			return -1;
		if (e[0] == MP_PROCESSOR_ENTRY && (e[3] & MP_CPU_EN)) {
			if (out->count < SMP_MAX_CPUS)
				out->apic_ids[out->count++] = e[1];
			out->total++;
		}
		e += size;
	}
	return 0;
}
