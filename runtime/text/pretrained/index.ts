/** Pretrained text encoders (CLIP, T5) from local Hugging Face folders, and SD3 conditioning. */
export * from "./tokenizer.ts";
export * from "./common.ts";
export * from "./clip-text.ts";
export * from "./t5-encoder.ts";
export * from "./hf-folder.ts";
export * from "./sd3-conditioning.ts";
export * from "./embed-cache.ts";
export * from "./prompt-encoder.ts";
