// doctest entry point of the rl/ suite (GRPO / PPO math).
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
