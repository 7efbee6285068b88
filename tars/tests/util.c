#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

void
tars_run_child(void (*fn)(void *), void *arg, struct child_result *out)
{
	int fds[2];
	memset(out, 0, sizeof(*out));
	if (pipe(fds) != 0) {
		cr_assert_fail("pipe: %s", strerror(errno));
	}
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		cr_assert_fail("fork: %s", strerror(errno));
	}
	if (pid == 0) {
		struct rlimit nocore = {0, 0};
		(void)setrlimit(RLIMIT_CORE, &nocore);
		close(fds[0]);
		if (dup2(fds[1], STDERR_FILENO) < 0) {
			_exit(99);
		}
		close(fds[1]);
		fn(arg);
		_exit(0);
	}
	close(fds[1]);
	size_t used = 0;
	for (;;) {
		ssize_t n = read(fds[0], out->err + used, sizeof(out->err) - 1 - used);
		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n <= 0) {
			break;
		}
		used += (size_t)n;
		if (used == sizeof(out->err) - 1) {
			char sink[512];
			while (read(fds[0], sink, sizeof(sink)) > 0) {
			}
			break;
		}
	}
	out->err[used] = '\0';
	close(fds[0]);
	int status;
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			cr_assert_fail("waitpid: %s", strerror(errno));
		}
	}
	if (WIFSIGNALED(status)) {
		out->signaled = 1;
		out->sig = WTERMSIG(status);
	} else {
		out->exit_code = WEXITSTATUS(status);
	}
}

int
tars_smaps_flags(const void *addr, char *flags, size_t len)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	if (f == NULL) {
		return -1;
	}
	char line[512];
	int inside = 0, found = -1;
	unsigned long a = (unsigned long)addr;
	while (fgets(line, sizeof(line), f) != NULL) {
		unsigned long lo, hi;
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) {
			inside = (a >= lo && a < hi);
			continue;
		}
		if (inside && strncmp(line, "VmFlags:", 8) == 0) {
			snprintf(flags, len, "%s", line + 8);
			found = 0;
			break;
		}
	}
	fclose(f);
	return found;
}

int
tars_has_vmflag(const void *addr, const char *flag)
{
	char flags[256];
	if (tars_smaps_flags(addr, flags, sizeof(flags)) != 0) {
		return 0;
	}
	char want[8];
	snprintf(want, sizeof(want), " %s", flag);
	char *p = flags;
	size_t n = strlen(want);
	while ((p = strstr(p, want)) != NULL) {
		if (p[n] == ' ' || p[n] == '\n' || p[n] == '\0') {
			return 1;
		}
		p += n;
	}
	return 0;
}
