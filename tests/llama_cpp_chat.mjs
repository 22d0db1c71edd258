// Answers questions with a GGUF in llama.cpp (node-llama-cpp 3.21.1, prebuilt CPU binary), the way llama.cpp's own
// server does it, and prints one JSON object on stdout. Called by tests/llama_cpp.py; see its docstring.
//
//   node llama_cpp_chat.mjs MODEL.gguf '["question", ...]' [--system TEXT] [--raw] [--max-tokens N]
//
// Env LLMCOURSE_NODE_LLAMA_CPP: the folder node-llama-cpp is installed in (its node_modules/ is there).
// Each question is its own one-turn chat. With the template (the default), the prompt is the GGUF's own
// tokenizer.chat_template rendered by llama.cpp's Jinja engine (messages, add_generation_prompt, bos_token, eos_token),
// tokenized by llama.cpp with special tokens parsed and BOS/EOS added only as the GGUF's add_bos/add_eos flags say
// (llama.cpp's add_special). --raw: the question is the prompt as is, same tokenization. Greedy decoding; a turn ends
// on an end-of-generation token of the GGUF's vocabulary (llama_vocab_is_eog) or at --max-tokens, nothing else: no
// stop strings, so a model that never emits its end token shows up as stop "max_tokens".
import path from "node:path";
import { pathToFileURL } from "node:url";

const args = process.argv.slice(2);
const opt = { system: null, raw: false, maxTokens: 64 };
const pos = [];
for (let i = 0; i < args.length; i++) {
    if (args[i] === "--system") opt.system = args[++i];
    else if (args[i] === "--raw") opt.raw = true;
    else if (args[i] === "--max-tokens") opt.maxTokens = Number(args[++i]);
    else pos.push(args[i]);
}
if (pos.length !== 2 || !(opt.maxTokens > 0)) {
    console.error("usage: node llama_cpp_chat.mjs MODEL.gguf '[\"question\", ...]' [--system TEXT] [--raw] [--max-tokens N]");
    process.exit(2);
}
const [modelPath, messagesJson] = pos;
const questions = JSON.parse(messagesJson);
if (opt.raw && opt.system != null) throw new Error("--system has no meaning with --raw (no chat template)");

const home = process.env.LLMCOURSE_NODE_LLAMA_CPP;
if (!home) throw new Error("LLMCOURSE_NODE_LLAMA_CPP is not set");
const nlc = await import(pathToFileURL(path.join(home, "node_modules", "node-llama-cpp", "dist", "index.js")).href);

const t0 = Date.now();
const llama = await nlc.getLlama({
    gpu: false, build: "never", usePrebuiltBinaries: true, skipDownload: true, progressLogs: false,
    logLevel: nlc.LlamaLogLevel.warn,
    logger: (level, message) => process.stderr.write(`[llama.cpp ${level}] ${message}\n`),  // keep stdout JSON only
});
const model = await llama.loadModel({ modelPath, gpuLayers: 0 });
const context = await model.createContext({ contextSize: 2048, sequences: 1 });
const sequence = context.getSequence();
const loadSeconds = (Date.now() - t0) / 1000;

const tok = model.tokens;
const template = model.fileInfo.metadata?.tokenizer?.chat_template ?? null;
if (!opt.raw && (template == null || template.trim() === ""))
    throw new Error(`${modelPath} has no tokenizer.chat_template; use --raw for a plain completion`);
// llama.cpp's Jinja engine (common/jinja, the one llama-server uses). Not a public node-llama-cpp API: its own
// JinjaTemplateChatWrapper renders with @huggingface/jinja first; this script wants llama.cpp's result.
const renderer = opt.raw ? null : new llama._bindings.AddonJinjaRenderer(template);
const tokenText = (t) => model.detokenize([t], true);

const answers = [];
for (const question of questions) {
    let promptText = question;
    if (!opt.raw) {
        const messages = opt.system == null ? [] : [{ role: "system", content: opt.system }];
        messages.push({ role: "user", content: question });
        promptText = renderer.render({
            messages, add_generation_prompt: true, bos_token: tok.bosString ?? "", eos_token: tok.eosString ?? "",
        });
    }
    const promptTokens = model.tokenize(promptText, true);          // parse_special, no BOS/EOS added
    if (tok.shouldPrependBosToken) promptTokens.unshift(tok.bos);   // llama.cpp add_special
    if (tok.shouldAppendEosToken) promptTokens.push(tok.eos);
    let leadingBos = 0;
    while (tok.bos != null && promptTokens[leadingBos] === tok.bos) leadingBos++;

    const t1 = Date.now();
    await sequence.clearHistory();
    const out = [];
    let stop = "max_tokens", stopToken = null;
    for await (const t of sequence.evaluate(promptTokens.slice(), { temperature: 0 })) {
        if (model.isEogToken(t)) { stop = "eog"; stopToken = { id: t, text: tokenText(t) }; break; }
        out.push(t);
        if (out.length >= opt.maxTokens) break;
    }
    answers.push({
        question,
        answer: model.detokenize(out, false),
        tokens: out,
        token_count: out.length,
        stop,
        stop_token: stopToken,
        prompt: {
            text: promptText,
            token_ids: promptTokens,
            token_count: promptTokens.length,
            leading_bos: leadingBos,
            bos_count: promptTokens.filter((t) => t === tok.bos).length,
        },
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
    load_seconds: loadSeconds,
    llama_cpp: { gpu: llama.gpu, build_type: llama.buildType, release: llama.llamaCppRelease },
}) + "\n");
await llama.dispose();
