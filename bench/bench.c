/*
 * bench.c - `agentbus bench`: picks the benchmark named by argv[1].
 */
#include "bench.h"

#include <stdio.h>
#include <string.h>

#include "bench_internal.h"
#include "durability.h"

static void bench_usage(FILE *out)
{
	fprintf(out,
		"usage: agentbus bench latency [--size BYTES] [--wait spin|sleep] [--count N] [--json]\n"
		"       agentbus bench throughput [--size BYTES] [--producers N] [--same-cpu]\n"
		"                                 [--count N | --seconds S] [--json]\n"
		"       agentbus bench noise [--seconds S] [--json]\n"
		"       agentbus bench spill [--size BYTES] [--seconds S] [--json]\n"
		"       agentbus bench synced [--publishers N] [--count N] [--json]\n"
		"       agentbus bench replay [--count N] [--size BYTES] [--json]\n"
		"       agentbus bench restart [--gib N] [--json]\n"
		"       agentbus bench replay-rate [--seconds S] [--records N] [--json]\n"
		"\n"
		"  latency     one-way latency between two processes on two CPUs, beside the raw\n"
		"              cache-line, Unix-socket and futex-wake figures of the same run\n"
		"  throughput  records/s and bytes/s from N producer processes to one subscriber\n"
		"  noise       how much of each CPU a pinned spinning process gets on this host\n"
		"  spill       records/s the spill writer sustains into the log vs raw disk bandwidth\n"
		"  synced      latency of synced publishes vs a raw 4 KiB write + fdatasync\n"
		"  replay      records/s replayed from the log (page cache, checksums verified)\n"
		"  restart     time until a restarted daemon serves again over a 1 GiB log\n"
		"  replay-rate how closely --rate original reproduces the gaps between records\n"
		"\n"
		"Each benchmark runs its own embedded daemon on a private bus; `--help` after a\n"
		"benchmark's name lists all its options.\n");
}

int agentbus_bench_main(int argc, char **argv)
{
	if (argc < 2) {
		bench_usage(stderr);
		return BENCH_USAGE;
	}
	if (strcmp(argv[1], "latency") == 0)
		return bench_latency_main(argc - 1, argv + 1);
	if (strcmp(argv[1], "throughput") == 0)
		return bench_throughput_main(argc - 1, argv + 1);
	if (strcmp(argv[1], "noise") == 0)
		return bench_noise_main(argc - 1, argv + 1);
	if (strcmp(argv[1], "spill") == 0)
		return bench_spill_main(argc - 1, argv + 1);
	if (strcmp(argv[1], "synced") == 0)
		return bench_synced_main(argc - 1, argv + 1);
	if (strcmp(argv[1], "replay") == 0)
		return bench_replay_main(argc - 1, argv + 1);
	if (strcmp(argv[1], "restart") == 0)
		return bench_restart_main(argc - 1, argv + 1);
	if (strcmp(argv[1], "replay-rate") == 0)
		return bench_replay_rate_main(argc - 1, argv + 1);
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		bench_usage(stdout);
		return BENCH_OK;
	}
	return bench_error("unknown benchmark '%s' (see --help)", argv[1]);
}
