/*
 * testing.h - hooks that let a test stop a producer at an exact step of a
 * publish (to kill it there). Not part of the public API. The check costs one
 * load of a global and a branch that is never taken in production.
 */
#ifndef AGENTBUS_BUS_TESTING_H
#define AGENTBUS_BUS_TESTING_H

enum test_hook_point {
	HOOK_RESERVED = 1, /* space and seq reserved; frame not marked yet */
	HOOK_MARKED = 2,   /* owner, length and seq written (a claim: tag CLAIMED); no record yet */
	HOOK_WRITTEN = 3,  /* record written; not committed */
};

extern void (*agentbus_test_hook)(int point);

static inline void test_hook(int point)
{
	if (__builtin_expect(agentbus_test_hook != 0, 0))
		agentbus_test_hook(point);
}

#endif
