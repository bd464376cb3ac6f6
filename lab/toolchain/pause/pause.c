/*
 * kubeha lab pause: the first process of a pod sandbox.
 *
 * It holds the pod's namespaces open and otherwise does nothing:
 *   - waits (in pause(2)) until a signal arrives, forever;
 *   - SIGINT or SIGTERM: exits with status 0;
 *   - SIGCHLD: collects every exited child (as PID 1 of a shared PID namespace, orphans of the
 *     pod's containers are re-parented to it), so no zombie is left behind.
 * `pause -v` prints its version and exits.
 *
 * Written for the kubeha lab (lab/toolchain.sh images); built static: gcc -static -Os.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef PAUSE_VERSION
#define PAUSE_VERSION "dev"
#endif

static void on_stop(int sig)
{
	(void)sig;
	_exit(0);
}

static void on_child(int sig)
{
	int saved = errno;
	(void)sig;
	/* One SIGCHLD may stand for several children: collect until none is left waiting. */
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	errno = saved;
}

static int install(int sig, void (*fn)(int), int flags)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = fn;
	sa.sa_flags = flags;
	sigfillset(&sa.sa_mask); /* handlers never interrupt each other */
	if (sigaction(sig, &sa, NULL) != 0) {
		fprintf(stderr, "pause: sigaction(%d): %s\n", sig, strerror(errno));
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc > 1) {
		if (strcmp(argv[1], "-v") == 0 || strcmp(argv[1], "--version") == 0) {
			printf("pause (kubeha lab) %s\n", PAUSE_VERSION);
			return 0;
		}
		fprintf(stderr, "usage: %s [-v]\n", argv[0]);
		return 2;
	}
	if (getpid() != 1)
		fprintf(stderr, "pause: note: running as PID %d, not 1: only my own children are reaped\n",
			(int)getpid());

	if (install(SIGINT, on_stop, 0) || install(SIGTERM, on_stop, 0) ||
	    install(SIGCHLD, on_child, SA_NOCLDSTOP | SA_RESTART))
		return 1;

	for (;;)
		pause();
}
