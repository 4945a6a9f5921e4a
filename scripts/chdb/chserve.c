/*
 * chserve runs chDB's ClickHouse engine (libchdb.so, from the npm package
 * @chdb/lib-linux-x64-gnu) as a server process: it loads the library and hands
 * its arguments to chdb_query_cmdline, which is clickhouse-local's command
 * line. `herald clickhouse serve` (internal/chembed) starts it as
 *
 *   chserve LIBCHDB --path=DIR --query_id=ID \
 *     --query "SYSTEM START LISTEN TCP; SYSTEM START LISTEN HTTP; <a query that never ends>" \
 *     -- --tcp_port=... --http_port=... --listen_host=127.0.0.1 ...
 *
 * clickhouse-local serves the native and HTTP protocols for as long as its
 * last query runs. Cancelling that query (KILL QUERY WHERE query_id = ID)
 * ends it, and clickhouse-local then shuts down cleanly and returns.
 *
 * The supervisor starts it with a parent-death signal (SIGKILL) and in a
 * process group of its own: a terminal's Ctrl-C reaches only the supervisor,
 * which then stops the engine as above.
 *
 * Exit status: 0 when clickhouse-local returned (after a cancelled last
 * query that is a clean stop; the engine prints its own errors, which
 * chdb_query_cmdline does not always report back), 1 when it reported an
 * error, 2 on a usage or loading error. Serving needs chDB 26.7 or later:
 * 26.5's clickhouse-local rejects SYSTEM START LISTEN.
 *
 * Build: cc -O2 -o chserve chserve.c -ldl   (Debian: apt-get install gcc libc6-dev)
 */
#include <dlfcn.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

/* The few symbols of chdb.h (chdb-io/chdb-core programs/local/chdb.h) used here. */
typedef struct chdb_result_ chdb_result;
typedef chdb_result *(*query_cmdline_fn)(int argc, char **argv);
typedef const char *(*result_error_fn)(chdb_result *result);

/* default_signals undoes what a non-interactive shell's `cmd &` does (SIGINT
 * and SIGQUIT ignored), so that kill -INT stops a hand-started engine too. */
static void default_signals(void) {
	signal(SIGINT, SIG_DFL);
	signal(SIGQUIT, SIG_DFL);
}

int main(int argc, char **argv) {
	if (argc < 2) {
		fprintf(stderr, "usage: %s LIBCHDB [clickhouse-local arguments...]\n", argv[0]);
		return 2;
	}
	default_signals();

	void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
	if (!lib) {
		fprintf(stderr, "chserve: dlopen %s: %s (install chDB's engine with: bash scripts/services.sh)\n", argv[1], dlerror());
		return 2;
	}
	query_cmdline_fn query_cmdline = (query_cmdline_fn)dlsym(lib, "chdb_query_cmdline");
	result_error_fn result_error = (result_error_fn)dlsym(lib, "chdb_result_error");
	if (!query_cmdline || !result_error) {
		fprintf(stderr, "chserve: %s lacks chdb_query_cmdline or chdb_result_error: is it chDB's libchdb.so (26.x)?\n", argv[1]);
		return 2;
	}

	argv[1] = "clickhouse"; /* clickhouse-local's argv[0] */
	chdb_result *result = query_cmdline(argc - 1, argv + 1);
	const char *err = result ? result_error(result) : "chdb_query_cmdline returned no result";
	if (err && *err && !strstr(err, "QUERY_WAS_CANCELLED")) {
		fprintf(stderr, "chserve: the engine stopped: %s\n", err);
		return 1;
	}
	fprintf(stderr, "chserve: clickhouse-local returned\n");
	return 0;
}
