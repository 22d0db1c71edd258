"""Test helper: answer questions with a GGUF in a real llama.cpp engine, offline (after a one-time npm install).

For tests only; never a course requirement. It checks what breaks in exported models as llama.cpp sees them:
an answer that never ends (no end-of-generation token), a doubled BOS, a missing or wrong chat template.

The runtime is npm's node-llama-cpp, pinned to 3.21.1: it ships prebuilt llama.cpp binaries (the CPU one for Linux
x64 is the @node-llama-cpp/linux-x64 package, ~30 MB), so it installs in seconds from the npm registry with no
compiler step. llama-cpp-python, the alternative, builds llama.cpp from source on install (minutes, a C++ toolchain).
install_runtime() puts it in a cache folder once; chat() runs tests/llama_cpp_chat.mjs with node.

How a prompt is made (tests/llama_cpp_chat.mjs), as llama.cpp's own server does it, not as node-llama-cpp's chat
session does: the GGUF's tokenizer.chat_template is rendered by llama.cpp's Jinja engine (the GGUF must have one,
there is no fallback to a guessed format), the text is tokenized by llama.cpp with special tokens parsed, and BOS is
added only when the GGUF's add_bos_token says so; decoding is greedy and stops only on an end-of-generation token of
the vocabulary or at max_tokens. node-llama-cpp's LlamaChatSession is not used because it would hide the faults
under test: it never adds the add_bos_token BOS (a template's {{ bos_token }} plus add_bos_token true, a double BOS
in llama.cpp, would look fine) and it also stops on the text that follows an assistant turn in the template (a
model whose <|im_end|> is not an end-of-generation token in the vocabulary would still look like it stops). Its
resolveChatWrapper() may swap the GGUF's template for a built-in wrapper it judges equivalent (ChatMLChatWrapper for
SmolLM2), or guess one from the file name when the GGUF has none; and its JinjaTemplateChatWrapper renders with
@huggingface/jinja, falling back to llama.cpp's engine only when that fails. The script calls llama.cpp's engine
itself, through node-llama-cpp's internal binding llama._bindings.AddonJinjaRenderer (fine with the version pinned).

    chat(gguf, ["What is the capital of France?"], system=None, max_tokens=64, use_template=True, threads=1) -> dict:
    {"answers": [{"question", "answer", "tokens", "token_count", "stop": "eog" | "max_tokens" | "ended",
                  "stop_token": {"id", "text"} | None,
                  "prompt": {"text", "token_ids", "token_count", "leading_bos", "bos_count"}, "seconds"}],
     "model": {"bos", "eos", "eot": {"id", "text"} | None, "add_bos", "add_eos", "chat_template"},
     "use_template", "system", "max_tokens", "threads", "load_seconds", "llama_cpp": {"gpu", "build_type", "release"}}

Each item of messages is a separate chat: a string is one user turn (after a system turn when system is given), a
list of {"role", "content"} dicts is a whole conversation as is. use_template=False: each string is sent as a raw
completion prompt.

The install runs `npm install` with --ignore-scripts (node-llama-cpp's postinstall would try to download or build
binaries), --omit=optional (its optional dependencies are every platform's binaries, CUDA and Vulkan ones included,
~730 MB) and the one platform package named instead, npm's cache and logs inside the cache folder. node runs with
getLlama({gpu: false, build: "never", skipDownload: true}) and HOME pointed into the cache folder, so nothing is
downloaded, built or written in the home directory at load time.
"""
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no lock; the atomic rename alone keeps a half-done install out of place
    fcntl = None

VERSION = "3.21.1"
SCRIPT = Path(__file__).with_name("llama_cpp_chat.mjs")
_DONE = ".installed"  # written last inside the install folder before it is renamed into place


class LlamaCppError(RuntimeError):
    """The llama.cpp runtime could not be installed or run; the message says what failed."""


def cache_root() -> Path:
    """$LLMCOURSE_TEST_CACHE, else ~/.cache/llmcourse-tests."""
    env = os.environ.get("LLMCOURSE_TEST_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "llmcourse-tests"


def _platform_package() -> str:
    """The npm package with node-llama-cpp's prebuilt CPU llama.cpp for this machine."""
    machine = platform.machine().lower()
    arch = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "arm64": "arm64"}.get(machine)
    name = {("linux", "x64"): "linux-x64", ("linux", "arm64"): "linux-arm64", ("darwin", "arm64"): "mac-arm64-metal",
            ("darwin", "x64"): "mac-x64", ("win32", "x64"): "win-x64", ("win32", "arm64"): "win-arm64"}.get(
                (sys.platform, arch))
    if name is None:
        raise LlamaCppError(f"node-llama-cpp {VERSION} has no prebuilt llama.cpp for {sys.platform}/{machine}")
    return f"@node-llama-cpp/{name}"


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise LlamaCppError(f"`{name}` is not on PATH: the llama.cpp tests need Node.js >= 20 with npm "
                            f"(they install node-llama-cpp {VERSION} from the npm registry once)")
    return path


def _tail(text: str, n: int = 3000) -> str:
    text = (text or "").strip()
    return text if len(text) <= n else "..." + text[-n:]


def install_runtime() -> Path:
    """The folder with node-llama-cpp in its node_modules/; installs it the first time (that needs the npm registry).

    Safe for concurrent test processes: one installs under a file lock into a temporary folder that is renamed into
    place when complete; the others wait and reuse it. Raises LlamaCppError saying what failed.
    """
    root = cache_root()
    target = root / f"node-llama-cpp-{VERSION}"
    if (target / _DONE).exists():
        return target
    node, npm = _tool("node"), _tool("npm")
    out = subprocess.run([node, "--version"], capture_output=True, text=True)
    major = out.stdout.strip().lstrip("v").split(".")[0]
    if out.returncode != 0 or not major.isdigit() or int(major) < 20:
        raise LlamaCppError(f"node-llama-cpp {VERSION} needs Node.js >= 20; `node --version` gave "
                            f"{out.stdout.strip() or out.stderr.strip()!r}")
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f"node-llama-cpp-{VERSION}.lock", "w") as lock:
        if fcntl is not None:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also if this process dies
        if (target / _DONE).exists():
            return target
        if target.exists():  # a folder without the marker: not ours to trust
            shutil.rmtree(target)
        tmp = root / f".node-llama-cpp-{VERSION}.tmp{os.getpid()}"
        if fcntl is not None:  # we hold the lock: any other temporary folder is left by an install that died
            for stale in root.glob(f".node-llama-cpp-{VERSION}.tmp*"):
                shutil.rmtree(stale, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        (tmp / "package.json").write_text('{"private": true}\n')
        cmd = [npm, "install", "--save-exact", "--omit=optional", "--ignore-scripts", "--no-audit", "--no-fund",
               "--no-update-notifier", "--cache", str(root / "npm-cache"), "--logs-dir", str(root / "npm-logs"),
               f"node-llama-cpp@{VERSION}", f"{_platform_package()}@{VERSION}"]
        start = time.monotonic()
        try:
            res = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, timeout=900)
        except subprocess.TimeoutExpired as e:
            shutil.rmtree(tmp, ignore_errors=True)
            raise LlamaCppError(f"`npm install node-llama-cpp@{VERSION}` took over 900 s (is the npm registry "
                                f"reachable?); stderr: {_tail(e.stderr if isinstance(e.stderr, str) else '')}")
        if res.returncode != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            raise LlamaCppError(f"`{' '.join(cmd)}` failed (exit {res.returncode}; it needs the npm registry the "
                                f"first time):\n{_tail(res.stderr or res.stdout)}")
        bins = tmp / "node_modules" / _platform_package() / "bins"
        if not (tmp / "node_modules" / "node-llama-cpp" / "dist" / "index.js").exists() or not any(
                bins.rglob("llama-addon.node")):
            shutil.rmtree(tmp, ignore_errors=True)
            raise LlamaCppError(f"npm install finished but left no node-llama-cpp or no prebuilt llama-addon.node "
                                f"under {bins}:\n{_tail(res.stderr or res.stdout)}")
        (tmp / _DONE).write_text(f"installed in {time.monotonic() - start:.1f} s\n")
        try:
            os.rename(tmp, target)
        except OSError:  # without a lock another process may have put its whole install there first
            shutil.rmtree(tmp, ignore_errors=True)
            if not (target / _DONE).exists():
                raise
    return target


def chat(gguf_path, messages, system=None, max_tokens=64, use_template=True, threads=1, timeout=180) -> dict:
    """Answer each message (a one-turn chat each) with the GGUF in llama.cpp; see the module docstring for the dict.

    threads=1: enough for the course's small models, and the same numbers whatever the machine; node-llama-cpp's own
    CPU default (at least 4 threads) made a shared 2-core machine take 8 s a token instead of 20 ms.
    """
    if isinstance(messages, str) or (messages and isinstance(messages[0], dict)):
        messages = [messages]  # one question, or one conversation
    if not Path(gguf_path).is_file():
        raise LlamaCppError(f"no GGUF file at {gguf_path}")
    home = install_runtime()
    cmd = [_tool("node"), str(SCRIPT), str(gguf_path), json.dumps(list(messages)), "--max-tokens", str(max_tokens),
           "--threads", str(threads)]
    if system is not None:
        cmd += ["--system", system]
    if not use_template:
        cmd.append("--raw")
    scratch = home / "home"  # HOME and TMPDIR of node: whatever node-llama-cpp writes stays in the cache folder
    (scratch / "tmp").mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "LLMCOURSE_NODE_LLAMA_CPP": str(home), "HOME": str(scratch), "TMPDIR": str(scratch / "tmp"),
           "NODE_LLAMA_CPP_GPU": "false", "NODE_LLAMA_CPP_SKIP_DOWNLOAD": "true"}
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired as e:
        err = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
        raise LlamaCppError(f"llama.cpp ({SCRIPT.name}) ran over {timeout} s on {gguf_path}; stderr:\n{_tail(err)}")
    if res.returncode != 0:
        raise LlamaCppError(f"llama.cpp ({SCRIPT.name}) failed on {gguf_path} (exit {res.returncode}); "
                            f"stderr:\n{_tail(res.stderr)}")
    try:
        result = json.loads(res.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        raise LlamaCppError(f"{SCRIPT.name} printed no JSON; stdout:\n{_tail(res.stdout)}\n"
                            f"stderr:\n{_tail(res.stderr)}")
    result["stderr"] = res.stderr
    return result
