"""doctor: each check, the pin parser, and the exit code."""
import subprocess
import sys

from llmcourse.course import doctor


def test_parse_pins_reads_names_versions_and_ignores_comments():
    text = "# c\ntorch==2.13.0   # 00\nfoo[bar]==1.2 ; python_version<'4'\n\nbaz>=1\n"
    assert doctor.parse_pins(text) == {"torch": "2.13.0", "foo": "1.2"}


def test_python_check_accepts_this_interpreter():
    assert doctor.check_python().ok


def test_packages_report_wrong_versions(monkeypatch, tmp_path):
    req = tmp_path / "requirements.txt"
    req.write_text("torch==0.0.1\nnot-a-real-package-xyz==1.0\n")
    monkeypatch.setattr(doctor, "requirements_file", lambda: req)
    c = doctor.check_packages()
    assert not c.ok
    assert "torch" in c.detail and "(want 0.0.1)" in c.detail
    assert "not-a-real-package-xyz missing" in c.detail
    assert "setup_kernel.sh" in c.fix


def test_installed_packages_match_requirements():
    c = doctor.check_packages()
    assert c.ok, c.detail


def test_report_exit_code_and_fix_list(capsys):
    good = doctor.Check("a", True, "fine")
    bad = doctor.Check("b", False, "broken", "do this")
    optional = doctor.Check("c", False, "meh", "maybe", required=False)
    assert doctor.report([good, optional]) == 0
    assert doctor.report([good, bad]) == 1
    out = capsys.readouterr().out
    assert "[FAIL] b" in out and "- b: do this" in out and "[warn] c" in out


def test_model_check_names_the_fix_when_not_prepared(monkeypatch, tmp_path):
    monkeypatch.setenv("LLMCOURSE_CACHE", str(tmp_path))
    c = doctor.check_model()
    assert not c.ok and "llmcourse prepare" in c.fix


def test_precision_check_says_when_llmcourse_precision_forces_auto(monkeypatch):
    monkeypatch.delenv("LLMCOURSE_PRECISION", raising=False)
    assert doctor.check_precision().detail == "'auto' measures this CPU (LLMCOURSE_PRECISION unset)"
    monkeypatch.setenv("LLMCOURSE_PRECISION", "bf16")
    c = doctor.check_precision()
    assert c.ok and c.detail == "'auto' is bf16 on a CPU: forced by LLMCOURSE_PRECISION=bf16"
    monkeypatch.setenv("LLMCOURSE_PRECISION", "half")
    c = doctor.check_precision()
    assert not c.ok and c.required and "LLMCOURSE_PRECISION='half'" in c.detail and "bf16 or fp32" in c.fix


def test_lamini_key_is_optional_and_never_printed(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LAMINI_API_KEY", raising=False)
    assert doctor.check_lamini().ok and "no LAMINI_API_KEY" in doctor.check_lamini().detail
    (tmp_path / ".env").write_text("LAMINI_API_KEY=secret-123\n")
    c = doctor.check_lamini()
    assert c.ok and "is set" in c.detail and "secret-123" not in c.detail


def test_doctor_command_passes_on_a_set_up_checkout():
    r = subprocess.run([sys.executable, "-m", "llmcourse", "doctor"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "[ ok ] Jupyter kernel  'llm' (Python (LLM))" in r.stdout


def test_compiler_check_warns_that_training_runs_eagerly_without_a_cxx_compiler(monkeypatch, tmp_path):
    import torch._inductor.config as inductor_config

    from llmcourse.training import compiling

    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path))
    compiling.compiler_problem.cache_clear()
    found = doctor.check_compiler()
    assert found.ok and found.detail == f"torch.compile can build CPU kernels; they are cached in {tmp_path}"
    with inductor_config.patch({"cpp.cxx": ("/nonexistent/g++",)}):
        compiling.compiler_problem.cache_clear()
        missing = doctor.check_compiler()
    compiling.compiler_problem.cache_clear()
    assert not missing.ok and not missing.required
    assert missing.detail.startswith("no working C++ compiler for torch.compile (")
    assert missing.detail.endswith("): training runs eagerly (same results, compile=true does nothing)")
