/*
 * trigger_sim: runs an AVR firmware in simavr with its UART0 on a pseudo-terminal.
 *
 *   trigger_sim [-m atmega328p] [-f 16000000] [-t max_wall_seconds] firmware.elf
 *
 * Standard output, one line per event (other lines, e.g. simavr's own log, may appear):
 *   pty /dev/pts/N          first: open this with any serial library (the baud is ignored)
 *   pin D2 1 123456         output pin PD2 went HIGH at simulated cycle 123456
 *
 * The simulated clock is paced to the wall clock: it never runs ahead of it (so timeouts in
 * the firmware mean what they say to a host), and it may fall behind on a loaded machine.
 * Cycle counts in "pin" lines are exact simulated time: cycle / frequency = seconds since reset.
 *
 * The bridge: bytes read from the pty master are raised on the UART's INPUT IRQ, as many as its
 * receive FIFO has room for (simavr then delivers them to the firmware at the configured baud);
 * bytes the firmware transmits arrive on the OUTPUT IRQ and are written to the pty master.
 */

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "avr_ioport.h"
#include "avr_uart.h"
#include "sim_avr.h"
#include "sim_elf.h"
#include "sim_io.h"
#include "sim_irq.h"
#include "sim_time.h"

#ifndef POLL_USEC
#define POLL_USEC 50 /* simulated time between two looks at the pty (5 bytes at 1 Mbaud) */
#endif

static volatile sig_atomic_t stop_requested;
static void on_signal(int sig) { (void)sig; stop_requested = 1; }

static avr_t *the_avr;
static int master_fd = -1;
static avr_uart_t *uart0;
static avr_irq_t *uart_input;

static uint8_t rx[4096]; /* host -> AVR bytes not yet in the UART's FIFO */
static size_t rx_len;

static struct timespec t_start;
static double wall_deadline_s;

static double wall_s(void) {
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (t.tv_sec - t_start.tv_sec) + (t.tv_nsec - t_start.tv_nsec) * 1e-9;
}

/* The FIFO is a ring of uart_fifo_fifo_size slots, one kept free. */
static int uart_fifo_room(void) {
	unsigned used = (uart0->input.write - uart0->input.read) & (uart_fifo_fifo_size - 1);
	return (int)(uart_fifo_fifo_size - 1 - used);
}

static void feed_uart(void) {
	size_t n = 0;
	int room = uart_fifo_room();
	while (n < rx_len && room-- > 0)
		avr_raise_irq(uart_input, rx[n++]);
	memmove(rx, rx + n, rx_len - n);
	rx_len -= n;
}

static void read_pty(void) {
	while (rx_len < sizeof(rx)) {
		ssize_t got = read(master_fd, rx + rx_len, sizeof(rx) - rx_len);
		if (got <= 0)
			break; /* EAGAIN: nothing more; EIO: no one has the slave open */
		rx_len += (size_t)got;
	}
}

/* Byte sent by the firmware. */
static void on_uart_output(avr_irq_t *irq, uint32_t value, void *param) {
	(void)irq;
	(void)param;
	uint8_t b = (uint8_t)value;
	/* Non-blocking: if the host is not reading and the pty buffer is full, the byte is lost,
	 * as it would be on a real wire. */
	if (write(master_fd, &b, 1) < 0 && errno != EAGAIN)
		perror("trigger_sim: write to pty");
}

/* A port pin changed; param packs the port letter and the bit. */
static uint8_t pin_level[3][8];
static void on_pin(avr_irq_t *irq, uint32_t value, void *param) {
	(void)irq;
	uintptr_t key = (uintptr_t)param;
	char port = (char)(key >> 8);
	int bit = (int)(key & 0xff);
	uint8_t *level = &pin_level[port - 'B'][bit];
	if ((value & 1) == *level)
		return;
	*level = value & 1;
	printf("pin %c%d %u %llu\n", port, bit, value & 1, (unsigned long long)the_avr->cycle);
}

/* Runs every POLL_USEC of simulated time: pace to the wall clock, move bytes in. */
static avr_cycle_count_t on_poll(avr_t *avr, avr_cycle_count_t when, void *param) {
	(void)param;
	double sim_s = (double)avr->cycle / avr->frequency;
	double ahead = sim_s - wall_s();
	if (ahead > 0) {
		/* Wait for the wall clock, or for the host to write, whichever comes first. */
		struct pollfd p = {.fd = master_fd, .events = POLLIN};
		struct timespec ts = {.tv_sec = (time_t)ahead,
		                      .tv_nsec = (long)((ahead - (time_t)ahead) * 1e9)};
		ppoll(&p, 1, &ts, NULL);
	}
	if (wall_deadline_s > 0 && wall_s() > wall_deadline_s)
		stop_requested = 1;
	read_pty();
	if (rx_len)
		feed_uart();
	return when + avr_usec_to_cycles(avr, POLL_USEC);
}

/* simavr's own messages go to stderr: stdout carries only this program's lines. */
static void log_to_stderr(avr_t *avr, const int level, const char *format, va_list ap) {
	(void)avr;
	if (level <= LOG_WARNING)
		vfprintf(stderr, format, ap);
}

static avr_uart_t *find_uart0(avr_t *avr) {
	uint32_t flags;
	for (avr_io_t *io = avr->io_port; io; io = io->next)
		if (!strcmp(io->kind, "uart") && io->ioctl &&
		    io->ioctl(io, AVR_IOCTL_UART_GET_FLAGS('0'), &flags) == 0)
			return (avr_uart_t *)io; /* avr_io_t is the struct's first member */
	return NULL;
}

static int open_pty(void) {
	int slave_fd;
	char name[256];
	struct termios tio;
	if (openpty(&master_fd, &slave_fd, name, NULL, NULL) < 0) {
		perror("trigger_sim: openpty");
		return -1;
	}
	/* Raw: no echo, no line editing, no CR/LF or XON/XOFF translation of binary frames. */
	tcgetattr(slave_fd, &tio);
	cfmakeraw(&tio);
	tcsetattr(slave_fd, TCSANOW, &tio);
	fcntl(master_fd, F_SETFL, fcntl(master_fd, F_GETFL) | O_NONBLOCK);
	/* slave_fd stays open for the process's life: otherwise reading the master fails with
	 * EIO whenever the host has the port closed. */
	printf("pty %s\n", name);
	return 0;
}

int main(int argc, char **argv) {
	const char *mcu = "atmega328p";
	unsigned long freq = 16000000UL;
	int opt;
	while ((opt = getopt(argc, argv, "m:f:t:")) != -1) {
		switch (opt) {
		case 'm': mcu = optarg; break;
		case 'f': freq = strtoul(optarg, NULL, 0); break;
		case 't': wall_deadline_s = atof(optarg); break;
		default:
			fprintf(stderr, "usage: %s [-m mcu] [-f hz] [-t max_seconds] firmware.elf\n", argv[0]);
			return 2;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, "usage: %s [-m mcu] [-f hz] [-t max_seconds] firmware.elf\n", argv[0]);
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	prctl(PR_SET_PDEATHSIG, SIGTERM); /* a test that dies takes its simulator with it */
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);

	avr_global_logger_set(log_to_stderr);

	static elf_firmware_t fw;
	if (elf_read_firmware(argv[optind], &fw) != 0) {
		fprintf(stderr, "trigger_sim: cannot read %s\n", argv[optind]);
		return 1;
	}
	if (!fw.mmcu[0])
		snprintf(fw.mmcu, sizeof(fw.mmcu), "%s", mcu);
	if (!fw.frequency)
		fw.frequency = freq;
	avr_t *avr = avr_make_mcu_by_name(fw.mmcu);
	if (!avr) {
		fprintf(stderr, "trigger_sim: unknown mcu %s\n", fw.mmcu);
		return 1;
	}
	the_avr = avr;
	avr_init(avr);
	avr_load_firmware(avr, &fw);

	uart0 = find_uart0(avr);
	if (!uart0) {
		fprintf(stderr, "trigger_sim: %s has no UART0\n", fw.mmcu);
		return 1;
	}
	/* No console echo of the firmware's bytes (they are binary), and no usleep() when the
	 * firmware polls the UART: pacing is done here. */
	uint32_t flags = 0;
	avr_ioctl(avr, AVR_IOCTL_UART_GET_FLAGS('0'), &flags);
	flags &= ~(AVR_UART_FLAG_STDIO | AVR_UART_FLAG_POLL_SLEEP);
	avr_ioctl(avr, AVR_IOCTL_UART_SET_FLAGS('0'), &flags);
	uart_input = avr_io_getirq(avr, AVR_IOCTL_UART_GETIRQ('0'), UART_IRQ_INPUT);
	avr_irq_register_notify(avr_io_getirq(avr, AVR_IOCTL_UART_GETIRQ('0'), UART_IRQ_OUTPUT),
	                        on_uart_output, NULL);

	for (char port = 'B'; port <= 'D'; port++)
		for (int bit = 0; bit < 8; bit++) {
			avr_irq_t *irq = avr_io_getirq(avr, AVR_IOCTL_IOPORT_GETIRQ(port), bit);
			if (irq)
				avr_irq_register_notify(irq, on_pin, (void *)(uintptr_t)(port << 8 | bit));
		}

	if (open_pty() < 0)
		return 1;
	clock_gettime(CLOCK_MONOTONIC, &t_start);
	avr_cycle_timer_register_usec(avr, POLL_USEC, on_poll, NULL);

	int state = cpu_Running;
	while (!stop_requested && state != cpu_Done && state != cpu_Crashed)
		state = avr_run(avr);
	if (state == cpu_Crashed)
		fprintf(stderr, "trigger_sim: the firmware crashed at cycle %llu\n",
		        (unsigned long long)avr->cycle);
	fprintf(stderr, "trigger_sim: simulated %.3f s in %.3f s\n",
	        (double)avr->cycle / avr->frequency, wall_s());
	avr_terminate(avr);
	return state == cpu_Crashed ? 1 : 0;
}
