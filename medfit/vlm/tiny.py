"""Tiny random-weight VLMs (LLaVA: CLIP + Llama; Gemma 3: SigLIP + Gemma 3) saved as normal HF folders, for tests and smoke runs."""
from __future__ import annotations

import re
import string
from pathlib import Path

import torch

SPECIAL = ["<pad>", "<unk>", "<s>", "</s>", "<image>", "<start_of_image>", "<image_soft_token>", "<end_of_image>",
           "<start_of_turn>", "<end_of_turn>"]
# LLaVA-1.5 style: a user turn with the image first, then "ASSISTANT:" as the generation prompt
LLAVA_TEMPLATE = ("{% for m in messages %}{{ m['role'] | upper }}: {% for c in m['content'] %}"
                  "{% if c['type'] == 'image' %}<image>\n{% else %}{{ c['text'] }}{% endif %}{% endfor %}{{ '\\n' }}{% endfor %}"
                  "{% if add_generation_prompt %}ASSISTANT:{% endif %}")
# Gemma 3 style: bos, <start_of_turn>user ... <end_of_turn>, then <start_of_turn>model
GEMMA3_TEMPLATE = ("{{ bos_token }}{% for m in messages %}<start_of_turn>{{ m['role'] }}{{ '\\n' }}{% for c in m['content'] %}"
                   "{% if c['type'] == 'image' %}<start_of_image>{% else %}{{ c['text'] }}{% endif %}{% endfor %}"
                   "<end_of_turn>{{ '\\n' }}{% endfor %}{% if add_generation_prompt %}<start_of_turn>model{{ '\\n' }}{% endif %}")


def word_vocabulary(texts: list[str]) -> dict[str, int]:
    """Special tokens, letters, digits, punctuation and every word of ``texts`` -> ids (word-level, no merges)."""
    words = SPECIAL + ["USER", "ASSISTANT", "user", "model", "\n"] + list(string.ascii_uppercase) + list(string.digits)
    words += list(string.punctuation)
    for text in texts:
        words += re.findall(r"\w+|[^\w\s]+", text)
    return {w: i for i, w in enumerate(dict.fromkeys(words))}


def word_tokenizer(vocab: dict[str, int], **special_tokens):
    """A word-level fast tokenizer over ``vocab`` (whitespace/punctuation split, unknown words -> <unk>)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", unk_token="<unk>", bos_token="<s>",
                                   eos_token="</s>", extra_special_tokens=special_tokens)


def _llava(vocab: dict[str, int], image_size: int):
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor
    from transformers.models.llava.image_processing_pil_llava import LlavaImageProcessorPil

    patch = max(image_size // 2, 1)
    image_processor = LlavaImageProcessorPil(size={"shortest_edge": image_size},
                                             crop_size={"height": image_size, "width": image_size})
    processor = LlavaProcessor(image_processor=image_processor, tokenizer=word_tokenizer(vocab, image_token="<image>"),
                               patch_size=patch, vision_feature_select_strategy="default", num_additional_image_tokens=1,
                               chat_template=LLAVA_TEMPLATE)
    vision = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                              image_size=image_size, patch_size=patch)
    text = LlamaConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                       num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256,
                       pad_token_id=vocab["<pad>"], bos_token_id=vocab["<s>"], eos_token_id=vocab["</s>"])
    config = LlavaConfig(vision_config=vision, text_config=text, image_token_id=vocab["<image>"],
                         vision_feature_select_strategy="default", vision_feature_layer=-1)
    return LlavaForConditionalGeneration(config), processor


def _gemma3(vocab: dict[str, int], image_size: int):
    from transformers import (
        Gemma3Config,
        Gemma3ForConditionalGeneration,
        Gemma3Processor,
        Gemma3TextConfig,
        SiglipVisionConfig,
    )
    from transformers.models.gemma3.image_processing_pil_gemma3 import Gemma3ImageProcessorPil

    tokenizer = word_tokenizer(vocab, boi_token="<start_of_image>", image_token="<image_soft_token>", eoi_token="<end_of_image>")
    processor = Gemma3Processor(image_processor=Gemma3ImageProcessorPil(size={"height": image_size, "width": image_size}),
                                tokenizer=tokenizer, chat_template=GEMMA3_TEMPLATE, image_seq_length=4)
    vision = SiglipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                                image_size=image_size, patch_size=max(image_size // 4, 1))
    text = Gemma3TextConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                            num_attention_heads=2, num_key_value_heads=1, head_dim=16, max_position_embeddings=256,
                            sliding_window=64, pad_token_id=vocab["<pad>"], bos_token_id=vocab["<s>"], eos_token_id=vocab["</s>"])
    config = Gemma3Config(vision_config=vision, text_config=text, mm_tokens_per_image=4,
                          boi_token_index=vocab["<start_of_image>"], eoi_token_index=vocab["<end_of_image>"],
                          image_token_index=vocab["<image_soft_token>"])
    model = Gemma3ForConditionalGeneration(config)
    with torch.no_grad():  # Gemma 3 starts its image projection at zero; random values let the image move the scores
        model.model.multi_modal_projector.mm_input_projection_weight.normal_(std=0.2)
    return model, processor


def build_tiny_vlm(folder: str | Path, texts: list[str] = (), image_size: int = 28, seed: int = 0,
                   family: str = "llava") -> Path:
    """Write a ~50k-parameter VLM (``llava`` or ``gemma3``) with random weights, word-level tokenizer and processor."""
    builders = {"llava": _llava, "gemma3": _gemma3}
    if family not in builders:
        raise ValueError(f"family {family!r}: expected one of {sorted(builders)}")
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model, processor = builders[family](word_vocabulary(list(texts)), image_size)
    folder = Path(folder)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder
