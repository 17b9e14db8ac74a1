/**
 * fuselm: LLM inference for Node.js.
 *
 *   import { loadModel } from 'fuselm';
 *   await using model = await loadModel('stories260K.gguf');
 *   const { text } = await model.generate('Once upon a time', { maxTokens: 64, temperature: 0 });
 */
export { loadModel, Model } from './model/model.js';
export type { LoadModelOptions, BeamSearchModelOptions, BeamSearchResult, BatchPrompt } from './model/model.js';
export type { AdapterUse, LoraAdapter } from './model/lora.js';
export type { GenerateOptions, GenerateResult, StreamChunk, FinishReason } from './generate.js';
export type { Timings } from './model/decode-call.js';
export type { BeamHypothesis } from './beam.js';
export type { ModelConfig } from './model/config.js';
export { loadEmbeddingModel, EmbeddingModel } from './model/bert.js';
export type { EmbedOptions, LoadEmbeddingModelOptions } from './model/bert.js';
export { EncoderDecoderModel, type EncoderDecoderConfig } from './model/encoder-decoder.js';
export type { GenerationConfig } from './formats/hf.js';
export { loadTokenizer } from './tokenizer/load.js';
export type { Tokenizer, StreamDecoder } from './tokenizer/tokenizer.js';
export { Chat, ChatTemplate, CHATML_TEMPLATE, applyChatTemplate } from './chat.js';
export type { ChatMessage, ChatOptions, ChatTemplateOptions, ChatSendOptions, ChatResult, ChatStreamChunk, RenderOptions } from './chat.js';
export type { ToolDefinition, ToolFunction, ToolChoice, ToolCall, ToolOptions } from './chat-tools.js';
export { DEFAULT_MODEL } from './default-model.js';
export { pullModel } from './hub/pull.js';
export type { PullOptions, PullProgress, PullResult } from './hub/pull.js';
export { listCache, removeCached, cacheDir } from './hub/cache.js';
export type { CachedModel } from './hub/cache.js';
export { jsonSchemaToGbnf, type JsonSchema } from './grammar/json-schema.js';
export type { GrammarOptions } from './grammar/constraint.js';
export { createServer } from './server/server.js';
export type { FuselmServer, ServerOptions } from './server/server.js';
export { FuselmError, FormatError } from './errors.js';
export type { FuselmErrorCode } from './errors.js';
export { readGguf, writeGguf, encodeGguf, gv } from './formats/gguf.js';
export type { GgufFile, GgufTensorInfo, GgufValue, GgufWriteSpec } from './formats/gguf.js';
export { GgmlType } from './formats/ggml-types.js';
export { devices } from './devices.js';
export type { DeviceInfo } from './devices.js';
