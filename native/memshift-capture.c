/*
 * memshift-capture: live capture for memshift's mirror, top --keys and hot keys.
 *
 * Takes the command line memshift gives tcpdump and writes the same pcap
 * stream to stdout:
 *
 *   memshift-capture -i IFACE [-U] -w - -s SNAPLEN -B KIB [-t MS] [--immediate-mode] FILTER
 *
 * Why not tcpdump: tcpdump asks libpcap for a 1000 ms timeout, so in its
 * default mode the kernel hands over a ring block only when the block is full
 * or a second has passed (mirror lags up to 1 s at low rates), and with
 * --immediate-mode libpcap gives every packet a slot of the snap length, so
 * the ring holds few packets and drops under load. Here the ring stays packed
 * (TPACKET_V3 blocks, no immediate mode) and the block timeout is a few
 * milliseconds (-t, default 5).
 *
 * stderr speaks tcpdump's language, which memshift already reads: a
 * "listening on" line once capturing, and on SIGUSR1 (and at exit) one line
 * "N packets captured, N packets received by filter, N packets dropped by
 * kernel". SIGINT/SIGTERM stop it after flushing; a closed stdout (EPIPE)
 * ends it quietly.
 */
#include <errno.h>
#include <limits.h>
#include <pcap/pcap.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NAME "memshift-capture"
/* tcpdump's meaning of -s 0: whole packets, up to this many bytes. */
#define WHOLE_PACKET 262144
/* stdout buffer: one dispatch batch is written with few syscalls, then flushed. */
#define OUT_BUFFER (1 << 20)

static pcap_t *handle;
static volatile sig_atomic_t stop_requested;
static volatile sig_atomic_t stats_requested;
static unsigned long long captured;

static void on_signal(int sig) {
  if (sig == SIGUSR1)
    stats_requested = 1;
  else
    stop_requested = 1;
  /* pcap_breakloop is meant to be called from a signal handler: it wakes the poll. */
  if (handle != NULL) pcap_breakloop(handle);
}

static void usage(void) {
  fprintf(stderr,
          "usage: " NAME " -i IFACE [-U] -w - [-s SNAPLEN] [-B KIB] [-t MS] [--immediate-mode] FILTER\n");
  exit(2);
}

static long number(const char *text, const char *what, long min, long max) {
  char *end;
  errno = 0;
  long value = strtol(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || value < min || value > max) {
    fprintf(stderr, NAME ": invalid %s: %s\n", what, text);
    exit(2);
  }
  return value;
}

static void print_stats(void) {
  struct pcap_stat st;
  if (pcap_stats(handle, &st) != 0) {
    fprintf(stderr, NAME ": cannot read counts: %s\n", pcap_geterr(handle));
    return;
  }
  fprintf(stderr, "%llu packets captured, %u packets received by filter, %u packets dropped by kernel",
          captured, st.ps_recv, st.ps_drop);
  if (st.ps_ifdrop != 0) fprintf(stderr, ", %u packets dropped by interface", st.ps_ifdrop);
  fputc('\n', stderr);
}

static void on_packet(u_char *dumper, const struct pcap_pkthdr *header, const u_char *bytes) {
  pcap_dump(dumper, header, bytes);
  captured++;
}

static void catch_signal(int sig) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(sig, &sa, NULL); /* no SA_RESTART: a blocked poll returns at once */
}

int main(int argc, char **argv) {
  const char *iface = NULL, *output = NULL, *filter = NULL;
  long snaplen = 0, buffer_kib = 64 * 1024, timeout_ms = 5;
  int immediate = 0;
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    int more = i + 1 < argc;
    if (strcmp(arg, "-i") == 0 && more) iface = argv[++i];
    else if (strcmp(arg, "-w") == 0 && more) output = argv[++i];
    else if (strcmp(arg, "-s") == 0 && more) snaplen = number(argv[++i], "snap length", 0, INT_MAX);
    else if (strcmp(arg, "-B") == 0 && more) buffer_kib = number(argv[++i], "buffer size", 1, INT_MAX / 1024);
    else if (strcmp(arg, "-t") == 0 && more) timeout_ms = number(argv[++i], "timeout", 1, 10000);
    else if (strcmp(arg, "-U") == 0) continue; /* always: flushed after every batch */
    else if (strcmp(arg, "--immediate-mode") == 0) immediate = 1;
    else if (arg[0] != '-' && filter == NULL) filter = arg;
    else usage();
  }
  if (iface == NULL || output == NULL || strcmp(output, "-") != 0) usage();
  if (snaplen == 0) snaplen = WHOLE_PACKET;

  char errbuf[PCAP_ERRBUF_SIZE] = "";
  handle = pcap_create(iface, errbuf);
  if (handle == NULL) {
    fprintf(stderr, NAME ": %s: %s\n", iface, errbuf);
    return 1;
  }
  pcap_set_snaplen(handle, (int)snaplen);
  pcap_set_buffer_size(handle, (int)(buffer_kib * 1024));
  pcap_set_timeout(handle, (int)timeout_ms);
  if (immediate) pcap_set_immediate_mode(handle, 1);
  int status = pcap_activate(handle);
  if (status < 0) {
    const char *detail = pcap_geterr(handle);
    if (status == PCAP_ERROR && detail[0] != '\0')
      fprintf(stderr, NAME ": %s: %s\n", iface, detail);
    else if (detail[0] != '\0' && strcmp(detail, pcap_statustostr(status)) != 0)
      fprintf(stderr, NAME ": %s: %s (%s)\n", iface, pcap_statustostr(status), detail);
    else
      fprintf(stderr, NAME ": %s: %s\n", iface, pcap_statustostr(status));
    return 1;
  }
  if (status > 0) fprintf(stderr, NAME ": warning: %s: %s\n", iface, pcap_geterr(handle));

  struct bpf_program program;
  if (pcap_compile(handle, &program, filter != NULL ? filter : "", 1, PCAP_NETMASK_UNKNOWN) != 0 ||
      pcap_setfilter(handle, &program) != 0) {
    fprintf(stderr, NAME ": filter: %s\n", pcap_geterr(handle));
    return 1;
  }
  pcap_freecode(&program);

  static char out_buffer[OUT_BUFFER];
  setvbuf(stdout, out_buffer, _IOFBF, sizeof out_buffer);
  pcap_dumper_t *dumper = pcap_dump_fopen(handle, stdout);
  if (dumper == NULL) {
    fprintf(stderr, NAME ": stdout: %s\n", pcap_geterr(handle));
    return 1;
  }
  signal(SIGPIPE, SIG_IGN); /* a closed stdout shows as EPIPE from the flush */
  catch_signal(SIGINT);
  catch_signal(SIGTERM);
  catch_signal(SIGUSR1);

  fprintf(stderr, "listening on %s, link-type %s (%s), snapshot length %ld bytes, timeout %ld ms%s\n", iface,
          pcap_datalink_val_to_name(pcap_datalink(handle)),
          pcap_datalink_val_to_description(pcap_datalink(handle)), snaplen, timeout_ms,
          immediate ? ", immediate mode" : "");
  if (pcap_dump_flush(dumper) != 0) return 0; /* the header; a reader already gone is no error */

  int code = 0;
  while (!stop_requested) {
    int n = pcap_dispatch(handle, -1, on_packet, (u_char *)dumper);
    if (n == PCAP_ERROR) {
      fprintf(stderr, NAME ": %s: %s\n", iface, pcap_geterr(handle));
      code = 1;
      break;
    }
    if (pcap_dump_flush(dumper) != 0) {
      if (errno == EPIPE) return 0; /* memshift stopped reading: nothing left to report to */
      fprintf(stderr, NAME ": stdout: %s\n", strerror(errno));
      return 1;
    }
    if (stats_requested) {
      stats_requested = 0;
      print_stats();
    }
  }
  print_stats();
  pcap_dump_flush(dumper);
  pcap_close(handle);
  return code;
}
