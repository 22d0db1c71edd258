// Answers questions with a GGUF in llama.cpp (node-llama-cpp 3.21.1, prebuilt CPU binary), the way llama.cpp's own
// server does it, and prints one JSON object on stdout. Called by tests/llama_cpp.py; see its docstring.
//
//   node llama_cpp_chat.mjs MODEL.gguf '["question", ...]' [--system TEXT] [--raw] [--max-tokens N] [--threads N]
//
// Env LLMCOURSE_NODE_LLAMA_CPP: the folder node-llama-cpp is installed in (its node_modules/ is there).
// Each question is its own chat: a string is the user turn (after the --system turn if any), a list is a whole
// conversation ([{role, content}, ...], --system not added). With the template (the default), the prompt is the
// GGUF's own tokenizer.chat_template rendered by llama.cpp's Jinja engine (messages, add_generation_prompt, bos_token,
// eos_token),
// tokenized by llama.cpp with special tokens parsed and BOS/EOS added only as the GGUF's add_bos/add_eos flags say
// (llama.cpp's add_special). --raw: the question is the prompt as is, same tokenization. Greedy decoding; a turn ends
// on an end-of-generation token of the GGUF's vocabulary (llama_vocab_is_eog) or at --max-tokens, nothing else: no
// stop strings, so a model that never emits its end token shows up as stop "max_tokens".
import path from "node:path";
import { pathToFileURL } from "node:url";

const args = process.argv.slice(2);
const opt = { system: null, raw: false, maxTokens: 64, threads: 1 };
const pos = [];
for (let i = 0; i < args.length; i++) {
    if (args[i] === "--system") opt.system = args[++i];
    else if (args[i] === "--raw") opt.raw = true;
    else if (args[i] === "--max-tokens") opt.maxTokens = Number(args[++i]);
    else if (args[i] === "--threads") opt.threads = Number(args[++i]);
    else pos.push(args[i]);
}
if (pos.length !== 2 || !(opt.maxTokens > 0) || !(opt.threads > 0)) {
    console.error("usage: node llama_cpp_chat.mjs MODEL.gguf '[\"question\", ...]' [--system TEXT] [--raw] " +
                  "[--max-tokens N] [--threads N]");
    process.exit(2);
}
const [modelPath, messagesJson] = pos;
const questions = JSON.parse(messagesJson);
if (!Array.isArray(questions) || questions.length === 0) throw new Error("the questions must be a non-empty JSON list");
if (opt.raw && (opt.system != null || questions.some((q) => typeof q !== "string")))
    throw new Error("--raw takes plain strings and no --system (there is no chat template)");

const home = process.env.LLMCOURSE_NODE_LLAMA_CPP;
if (!home) throw new Error("LLMCOURSE_NODE_LLAMA_CPP is not set");
const nlc = await import(pathToFileURL(path.join(home, "node_modules", "node-llama-cpp", "dist", "index.js")).href);

const t0 = Date.now();
const llama = await nlc.getLlama({
    gpu: false, build: "never", usePrebuiltBinaries: true, skipDownload: true, progressLogs: false,
    maxThreads: opt.threads,  // CPU default: at least 4 threads, which on a shared 2-core box took 8 s a token
    logLevel: nlc.LlamaLogLevel.warn,
    logger: (level, message) => process.stderr.write(`[llama.cpp ${level}] ${message}\n`),  // keep stdout JSON only
});
const model = await llama.loadModel({ modelPath, gpuLayers: 0 });
const tok = model.tokens;
const template = model.fileInfo.metadata?.tokenizer?.chat_template ?? null;
if (!opt.raw && (template == null || template.trim() === ""))
    throw new Error(`${modelPath} has no tokenizer.chat_template; use --raw for a plain completion`);
// llama.cpp's own Jinja engine (common/jinja, compiled into the addon). Not a public node-llama-cpp API: its own
// JinjaTemplateChatWrapper renders with @huggingface/jinja first; this script wants llama.cpp's result.
const renderer = opt.raw ? null : new llama._bindings.AddonJinjaRenderer(template);
const tokenText = (t) => model.detokenize([t], true);

function makePrompt(question) {
    let text = question;
    if (!opt.raw) {
        const system = opt.system == null ? [] : [{ role: "system", content: opt.system }];
        const messages = typeof question !== "string" ? question  // a whole conversation, as given
            : [...system, { role: "user", content: question }];
        text = renderer.render({
            messages, add_generation_prompt: true, bos_token: tok.bosString ?? "", eos_token: tok.eosString ?? "",
        });
    }
    const ids = model.tokenize(text, true);  // parse_special; adds no BOS/EOS
    if (tok.shouldPrependBosToken) ids.unshift(tok.bos);  // llama.cpp's add_special
    if (tok.shouldAppendEosToken) ids.push(tok.eos);
    let leadingBos = 0;
    while (tok.bos != null && ids[leadingBos] === tok.bos) leadingBos++;
    return { text, token_ids: ids, token_count: ids.length, leading_bos: leadingBos,
             bos_count: ids.filter((t) => t === tok.bos).length };
}
const prompts = questions.map(makePrompt);
// Room for the longest prompt and its answer, so llama.cpp never shifts the context (it would drop tokens silently).
const contextSize = Math.max(...prompts.map((p) => p.token_count)) + opt.maxTokens + 1;
if (contextSize > model.trainContextSize)
    throw new Error(`prompt + max tokens (${contextSize}) exceed the model's context (${model.trainContextSize})`);
const context = await model.createContext({ contextSize, sequences: 1, threads: opt.threads });
const sequence = context.getSequence();
const loadSeconds = (Date.now() - t0) / 1000;

const answers = [];
for (const [i, question] of questions.entries()) {
    const prompt = prompts[i];
    const t1 = Date.now();
    await sequence.clearHistory();
    const out = [];
    let stop = "ended", stopToken = null;  // "ended": the generator stopped by itself (not expected)
    for await (const t of sequence.evaluate(prompt.token_ids.slice(), { temperature: 0, yieldEogToken: true })) {
        if (model.isEogToken(t)) { stop = "eog"; stopToken = { id: t, text: tokenText(t) }; break; }
        out.push(t);
        if (out.length >= opt.maxTokens) { stop = "max_tokens"; break; }
    }
    answers.push({
        question,
        answer: model.detokenize(out, false),
        tokens: out,
        token_count: out.length,
        stop,
        stop_token: stopToken,
        prompt,
        seconds: (Date.now() - t1) / 1000,
    });
}

const tokenInfo = (t) => (t == null ? null : { id: t, text: tokenText(t) });
process.stdout.write(JSON.stringify({
    answers,
    model: {
        path: modelPath,
        bos: tokenInfo(tok.bos), eos: tokenInfo(tok.eos), eot: tokenInfo(tok.eot),
        add_bos: tok.shouldPrependBosToken, add_eos: tok.shouldAppendEosToken,
        chat_template: template,
    },
    use_template: !opt.raw,
    system: opt.system,
    max_tokens: opt.maxTokens,
    threads: opt.threads,
    load_seconds: loadSeconds,
    llama_cpp: { gpu: llama.gpu, build_type: llama.buildType, release: llama.llamaCppRelease },
}) + "\n");
await llama.dispose();
