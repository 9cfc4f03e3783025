/* console.c - COM1 16550 output, polled, plus a tiny printf.
 * Works from ring 0 and ring 3 (TSS I/O bitmap). Every port access is a VM exit
 * (~10 us from ring 0, ~29 us from ring 3), so print only what matters. */
#include "kit.h"

#define COM1     0x3f8
#define UART_THR (COM1 + 0) /* transmit holding (DLAB=0) */
#define UART_IER (COM1 + 1)
#define UART_FCR (COM1 + 2)
#define UART_LCR (COM1 + 3)
#define UART_MCR (COM1 + 4)
#define UART_LSR (COM1 + 5)
#define LSR_THRE 0x20

/* 8N1, no interrupts, FIFO on. Baud divisor is left alone: virtual UARTs
 * ignore it and touching DLAB only costs exits. */
void console_init(void)
{
	outb(UART_IER, 0x00);
	outb(UART_LCR, 0x03);
	outb(UART_FCR, 0x07);
	outb(UART_MCR, 0x03);
}

void kit_putc(char c)
{
	/* Bounded wait: a UART model that never sets THRE must not hang us. */
	for (unsigned int i = 0; i < 100000; i++)
		if (inb(UART_LSR) & LSR_THRE)
			break;
	outb(UART_THR, (uint8_t)c);
}

void kit_puts(const char *s)
{
	while (*s)
		kit_putc(*s++);
}

static void put_num(uint64_t v, unsigned int base, int width, char pad, int neg)
{
	char buf[24];
	int n = 0;

	do {
		unsigned int d = v % base;
		buf[n++] = d < 10 ? '0' + d : 'a' + d - 10;
		v /= base;
	} while (v);
	if (neg)
		buf[n++] = '-';
	for (; width > n; width--)
		kit_putc(pad);
	while (n)
		kit_putc(buf[--n]);
}

/* Supports %s %c %d %i %u %x %p %% with optional '0', width and 'l'/'ll'/'z'. */
void kit_vprintf(const char *fmt, va_list ap)
{
	for (; *fmt; fmt++) {
		if (*fmt != '%') {
			kit_putc(*fmt);
			continue;
		}
		fmt++;
		char pad = ' ';
		int width = 0, lng = 0;
		if (*fmt == '0') {
			pad = '0';
			fmt++;
		}
		while (*fmt >= '0' && *fmt <= '9')
			width = width * 10 + (*fmt++ - '0');
		while (*fmt == 'l' || *fmt == 'z') {
			lng = 1;
			fmt++;
		}
		switch (*fmt) {
		case 's': {
			const char *s = va_arg(ap, const char *);
			kit_puts(s ? s : "(null)");
			break;
		}
		case 'c':
			kit_putc((char)va_arg(ap, int));
			break;
		case 'd':
		case 'i': {
			int64_t v = lng ? va_arg(ap, int64_t) : va_arg(ap, int);
			put_num(v < 0 ? -(uint64_t)v : (uint64_t)v, 10, width, pad, v < 0);
			break;
		}
		case 'u':
			put_num(lng ? va_arg(ap, uint64_t) : va_arg(ap, unsigned int), 10, width, pad, 0);
			break;
		case 'x':
			put_num(lng ? va_arg(ap, uint64_t) : va_arg(ap, unsigned int), 16, width, pad, 0);
			break;
		case 'p':
			kit_puts("0x");
			put_num((uint64_t)(uintptr_t)va_arg(ap, void *), 16, width, pad, 0);
			break;
		case '%':
			kit_putc('%');
			break;
		case '\0':
			return;
		default:
			kit_putc('%');
			kit_putc(*fmt);
			break;
		}
	}
}

void kit_printf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	kit_vprintf(fmt, ap);
	va_end(ap);
}
