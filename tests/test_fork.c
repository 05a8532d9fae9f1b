/*
 * test_fork.c - handles inherited across fork() belong to the parent. A
 * child that closes the bus, stream and subscription it inherited frees its
 * own copies and leaves the parent's subscription slot, producer intent
 * slot, alive file and connection alone; its control requests through them
 * fail with AGENTBUS_E_INVALID, and so does a publish through an inherited
 * stream, which touches neither the ring nor the intent slot of the parent's
 * thread.
 *
 * A process that died is seen dead even though a child it forked lives on
 * with copies of its descriptors (they are closed in the child at the fork).
 *
 * The test forks bare, so this process must run no thread: the daemon is a
 * child process (this program re-executed, as in test_daemon_kill.c).
 */
#include <signal.h>
#include <sys/stat.h>

#include "bus/internal.h"
#include "bus/protocol.h" /* CLIENTS_DIR */
#include "helpers.h"

#define STREAM "fork"

static int64_t publish(agentbus_stream *stream, const char *subject)
{
	struct agentbus_message m = t_msg(subject, "x", 1);

	return agentbus_publish(stream, &m, T_WAIT_MS);
}

static uint32_t subscriptions(agentbus_stream *stream)
{
	struct agentbus_stream_info info;

	T_OK(agentbus_stream_stat(stream, &info));
	return info.subscriptions;
}

/* The intent slot that this thread of @bus's client holds on @stream. */
static struct intent_slot *my_intent(agentbus_bus *bus, agentbus_stream *stream)
{
	for (uint32_t i = 0; i < STREAM_MAX_INTENTS; i++)
		if (load_relaxed(&stream->control->intents[i].owner) == bus->client_id)
			return &stream->control->intents[i];
	t_fail(__FILE__, __LINE__, "the parent holds no intent slot after publishing");
}

/* The child: everything it inherited, used as far as allowed, then closed. */
static int child(agentbus_bus *bus, agentbus_stream *stream, agentbus_sub *sub)
{
	struct agentbus_stream_config small = { .ring_size = AGENTBUS_MIN_RING_SIZE };
	agentbus_stream *other = NULL;
	agentbus_sub *other_sub = NULL;

	T_ERR(agentbus_stream_create(bus, "fork-child", &small), AGENTBUS_E_INVALID);
	T_ASSERTF(strstr(agentbus_last_error(), "open the bus again after fork()"),
		  "the error says: %s", agentbus_last_error());
	T_ERR(agentbus_stream_delete(bus, STREAM), AGENTBUS_E_INVALID);
	T_ERR(agentbus_stream_open(bus, STREAM, &other), AGENTBUS_E_INVALID);
	T_ERR(agentbus_subscribe(stream, NULL, &other_sub), AGENTBUS_E_INVALID);
	/* Its thread's cache of the parent thread's intent slot was forgotten
	 * at the fork, so this is asked, and refused. */
	T_ERR(publish(stream, "fork.child"), AGENTBUS_E_INVALID);
	T_ASSERTF(strstr(agentbus_last_error(), "open the bus again after fork()"),
		  "the error says: %s", agentbus_last_error());
	agentbus_sub_close(sub);
	agentbus_stream_close(stream);
	agentbus_close(bus);
	return T_PASS;
}

/*
 * A process that subscribed, forked a child and then died: the daemon must
 * see it dead while the child lives on (the child's copy of its connection
 * used to keep it open), and free its subscription. Returns once it has,
 * or fails; the child is killed either way.
 */
static void check_dead_parent_not_kept_alive(agentbus_stream *stream)
{
	pid_t *grandchild = mmap(NULL, sizeof(pid_t), PROT_READ | PROT_WRITE,
				 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	struct t_deadline d;
	agentbus_stream *s;
	agentbus_bus *bus;
	agentbus_sub *sub;
	pid_t parent;
	int status;

	T_ASSERT(grandchild != MAP_FAILED);
	*grandchild = 0;
	fflush(NULL);
	parent = fork();
	T_ASSERTF(parent >= 0, "fork: %s", strerror(errno));
	if (parent == 0) {
		/* Another client: subscribes, forks a child that lives on, dies. */
		if (agentbus_open(&bus, t_state.bus_name) != 0 ||
		    agentbus_stream_open(bus, STREAM, &s) != 0 || agentbus_subscribe(s, NULL, &sub) != 0)
			_exit(T_FAIL);
		parent = fork();
		if (parent == 0) {
			d = t_deadline_ms(30000); /* killed long before */
			while (!t_expired(&d))
				t_sleep_us(10000);
			_exit(T_PASS);
		}
		*grandchild = parent;
		_exit(parent > 0 ? T_PASS : T_FAIL);
	}
	status = t_wait_child(parent, 20000);
	T_ASSERTF(status == T_PASS && *grandchild > 0, "the subscribing process ended with %d",
		  status);
	d = t_deadline_ms(5000);
	while (subscriptions(stream) != 1 && !t_expired(&d))
		t_sleep_us(5000);
	kill(*grandchild, SIGKILL);
	T_ASSERTF(subscriptions(stream) == 1, "%u subscriptions 5 s after a subscriber died "
		  "leaving a child of fork() alive, want 1 (the daemon still takes it for alive)",
		  subscriptions(stream));
	munmap(grandchild, sizeof(pid_t));
	printf("ok - a subscriber that died is seen dead while its child of fork() lives on\n");
}

int main(int argc, char **argv)
{
	static const struct t_role roles[] = { { "daemon", t_role_daemon } };
	struct agentbus_stream_config small = { .ring_size = AGENTBUS_MIN_RING_SIZE };
	struct agentbus_record rec;
	struct intent_slot *intent, before;
	agentbus_stream *stream;
	agentbus_bus *bus;
	agentbus_sub *sub;
	char alive[PATH_LEN + 32]; /* <bus dir>/clients/<id> */
	pid_t daemon, pid;
	int status;

	t_child_dispatch(argc, argv, roles, 1);
	t_begin("fork");

	daemon = t_start_daemon_child(&bus);
	t_create_stream(bus, STREAM, small.ring_size, 0);
	stream = t_open_stream(bus, STREAM);
	sub = t_subscribe(stream, AGENTBUS_START_NEW, 0, AGENTBUS_WAIT_SLEEP);
	T_EQ(T_OK(publish(stream, "fork.parent")), 1);
	T_EQ(agentbus_sub_read(sub, &rec, T_WAIT_MS), 1);
	intent = my_intent(bus, stream);
	before = *intent;
	snprintf(alive, sizeof(alive), "%s/%s/%u", bus->dir, CLIENTS_DIR, bus->client_id);
	T_ASSERTF(access(alive, F_OK) == 0, "no alive file %s", alive);

	fflush(NULL);
	pid = fork();
	T_ASSERTF(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0)
		_exit(child(bus, stream, sub));
	status = t_wait_child(pid, 20000);
	T_ASSERTF(status == T_PASS, "the child ended with %d (see its message above)", status);
	printf("ok - the child closed what it inherited\n");

	T_EQ(subscriptions(stream), 1);
	T_ASSERTF(access(alive, F_OK) == 0, "the child removed the parent's alive file %s", alive);
	T_ASSERTF(intent->owner == before.owner && intent->thread == before.thread &&
		  intent->position == before.position && intent->seq == before.seq,
		  "the child changed the parent thread's intent slot (owner %u -> %u, position %"
		  PRIu64 " -> %" PRIu64 ", seq %" PRIu64 " -> %" PRIu64 ")", before.owner,
		  intent->owner, before.position, intent->position, before.seq, intent->seq);
	T_EQ(load_relaxed(&stream->control->intentless), 0);
	/* The parent's handles go on working: publish, read, control requests. */
	T_EQ(T_OK(publish(stream, "fork.parent")), 2);
	T_EQ(agentbus_sub_read(sub, &rec, T_WAIT_MS), 1);
	T_ASSERT(rec.seq == 2 && t_subject_is(&rec, "fork.parent"));
	T_OK(agentbus_stream_create(bus, "fork-after", &small));
	T_OK(agentbus_stream_delete(bus, "fork-after"));
	printf("ok - the parent's subscription, intent slot, alive file and connection are intact\n");
	check_dead_parent_not_kept_alive(stream);

	agentbus_sub_close(sub);
	agentbus_stream_close(stream);
	agentbus_close(bus);
	kill(daemon, SIGTERM);
	status = t_wait_child(daemon, 20000);
	T_ASSERTF(status == T_PASS, "the daemon ended with %d on SIGTERM", status);
	return t_done();
}
