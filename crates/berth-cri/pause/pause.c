/*
 * berth-pause: the process of a CRI pod sandbox's infra container. It holds the pod's
 * network, IPC and UTS namespaces (and the PID namespace of a pod that shares one) while
 * the pod lives: it waits for signals, reaps the children the PID namespace hands it, and
 * exits 0 on SIGTERM or SIGINT (as PID 1 it would otherwise ignore them).
 *
 * Built static by crates/berth-cri/build.rs so that it needs nothing in its image: the
 * image berthd makes from it holds this one file.
 */
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void on_term(int sig)
{
	(void)sig;
	_exit(0);
}

static void on_child(int sig)
{
	(void)sig;
	while (waitpid(-1, NULL, WNOHANG) > 0) {
	}
}

static int handle(int sig, void (*handler)(int), int flags)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = handler;
	sa.sa_flags = flags;
	sigemptyset(&sa.sa_mask);
	return sigaction(sig, &sa, NULL);
}

int main(int argc, char **argv)
{
	static const char usage[] = "berth-pause: takes no arguments\n";
	static const char failed[] = "berth-pause: cannot install signal handlers\n";

	(void)argv;
	if (argc != 1) {
		(void)!write(2, usage, sizeof(usage) - 1);
		return 2;
	}
	if (handle(SIGINT, on_term, 0) < 0 || handle(SIGTERM, on_term, 0) < 0 ||
	    handle(SIGCHLD, on_child, SA_NOCLDSTOP | SA_RESTART) < 0) {
		(void)!write(2, failed, sizeof(failed) - 1);
		return 1;
	}
	for (;;)
		pause();
}
