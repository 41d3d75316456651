"""A tiny random-weight LLaVA (CLIP vision tower + Llama text model) saved as a normal HF folder, for tests and smoke runs."""
from __future__ import annotations

import re
import string
from pathlib import Path

import torch

SPECIAL = ["<pad>", "<unk>", "<s>", "</s>", "<image>"]
# a user turn with the image first, then "ASSISTANT:" as the generation prompt (LLaVA-1.5 style)
CHAT_TEMPLATE = ("{% for m in messages %}{{ m['role'] | upper }}: {% for c in m['content'] %}"
                 "{% if c['type'] == 'image' %}<image>\n{% else %}{{ c['text'] }}{% endif %}{% endfor %}{{ '\\n' }}{% endfor %}"
                 "{% if add_generation_prompt %}ASSISTANT:{% endif %}")


def word_vocabulary(texts: list[str]) -> dict[str, int]:
    """Special tokens, letters, digits, punctuation and every word of ``texts`` -> ids (word-level, no merges)."""
    words = SPECIAL + ["USER", "ASSISTANT", "\n"] + list(string.ascii_uppercase) + list(string.digits) + list(string.punctuation)
    for text in texts:
        words += re.findall(r"\w+|[^\w\s]+", text)
    return {w: i for i, w in enumerate(dict.fromkeys(words))}


def build_tiny_vlm(folder: str | Path, texts: list[str] = (), image_size: int = 28, seed: int = 0) -> Path:
    """Write a ~50k-parameter LLaVA with random weights, its word-level tokenizer and processor to ``folder``."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor,
                              PreTrainedTokenizerFast)
    from transformers.models.llava.image_processing_pil_llava import LlavaImageProcessorPil

    vocab = word_vocabulary(list(texts))
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", unk_token="<unk>", bos_token="<s>",
                                        eos_token="</s>", extra_special_tokens={"image_token": "<image>"})
    patch = max(image_size // 2, 1)
    image_processor = LlavaImageProcessorPil(size={"shortest_edge": image_size},
                                             crop_size={"height": image_size, "width": image_size})
    processor = LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=patch,
                               vision_feature_select_strategy="default", num_additional_image_tokens=1,
                               chat_template=CHAT_TEMPLATE)
    vision = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                              image_size=image_size, patch_size=patch)
    text = LlamaConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                       num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256,
                       pad_token_id=vocab["<pad>"], bos_token_id=vocab["<s>"], eos_token_id=vocab["</s>"])
    config = LlavaConfig(vision_config=vision, text_config=text, image_token_id=vocab["<image>"],
                         vision_feature_select_strategy="default", vision_feature_layer=-1)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = LlavaForConditionalGeneration(config)
    folder = Path(folder)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder
