"""malloc: the glibc setting reaches every process that trains (CLI, kernel, bench), and only where it applies."""
import json
import os
import subprocess
import sys

import pytest

from llmcourse.core import malloc

glibc = pytest.mark.skipif(not malloc.applies({}), reason="the setting is for Linux with glibc")


@glibc
def test_tuned_env_adds_the_setting_and_keeps_other_tunables():
    assert malloc.tuned_env({})["GLIBC_TUNABLES"] == "glibc.malloc.tcache_count=0"
    env = malloc.tuned_env({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2", "X": "1"})
    assert env == {"GLIBC_TUNABLES": "glibc.malloc.arena_max=2:glibc.malloc.tcache_count=0", "X": "1"}
    assert malloc.tuned_env(env) == env  # already there: unchanged, not added twice


def test_opting_out_leaves_the_environment_alone():
    assert malloc.tuned_env({"LLMCOURSE_MALLOC": "system"}) == {"LLMCOURSE_MALLOC": "system"}
    assert not malloc.is_set({"GLIBC_TUNABLES": "glibc.malloc.tcache_count=7"})


def _doctor_allocator_line(env):
    r = subprocess.run([sys.executable, "-m", "llmcourse", "doctor"], capture_output=True, text=True, env=env,
                       timeout=120)
    return next(line for line in r.stdout.splitlines() if "allocator" in line)


@glibc
def test_the_command_line_restarts_itself_with_the_setting():
    env = {k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES", "_LLMCOURSE_RESTARTED")}
    assert "[ ok ] allocator" in _doctor_allocator_line(env) and malloc.TUNABLE in _doctor_allocator_line(env)
    assert "nothing to set" in _doctor_allocator_line({**env, "LLMCOURSE_MALLOC": "system"})


@glibc
def test_the_course_kernel_starts_with_the_setting():
    from jupyter_client.manager import start_new_kernel

    spec = json.loads(subprocess.run([sys.executable, "-m", "jupyter", "kernelspec", "list", "--json"],
                                     capture_output=True, text=True, check=True).stdout)["kernelspecs"]["llm"]
    assert spec["spec"]["env"]["GLIBC_TUNABLES"] == malloc.TUNABLE, "run ./setup_kernel.sh"
    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}  # the kernel must not inherit it from here
    manager, client = start_new_kernel(kernel_name="llm", env=env)
    out: list[str] = []
    try:
        reply = client.execute_interactive("import os; print(os.environ.get('GLIBC_TUNABLES'))", timeout=60,
                                           output_hook=lambda msg: out.append(msg["content"].get("text", "")))
        assert reply["content"]["status"] == "ok"
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    assert "".join(out).strip() == malloc.TUNABLE

