#!/usr/bin/env python3
"""Writes testdata/tokenizer/: a small byte-level BPE tokenizer shaped like Xenova/gpt-4 (GPT-4's
pre-tokenizer regex, `<|endoftext|>` as EOS, no BOS) trained on the fixture rows, with a short
`model_max_length` so that per-document truncation is exercised, and a chat template.

Run once by a developer (`pip install tokenizers==0.23.3`); the output is committed."""

from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

import datasets_fixture as fx

OUT = Path(__file__).resolve().parent.parent / "testdata" / "tokenizer"
# cl100k_base's split pattern, as in Xenova/gpt-4's tokenizer.json.
GPT4_SPLIT = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
CHAT_TEMPLATE = "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"


def main() -> None:
    corpus = [fx.row_text("HuggingFaceFW/fineweb", "CC-MAIN-2013-20", "train", i) for i in range(2000)]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(GPT4_SPLIT), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600,
        min_frequency=2,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(corpus, trainer)
    OUT.mkdir(parents=True, exist_ok=True)
    tok.save(str(OUT / "tokenizer.json"))
    config = {
        "model_max_length": 128,
        "eos_token": "<|endoftext|>",
        "bos_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
        "tokenizer_class": "GPT2TokenizerFast",
        "chat_template": CHAT_TEMPLATE,
    }
    import json
    (OUT / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    print(f"wrote {OUT} (vocab {tok.get_vocab_size()})")


if __name__ == "__main__":
    main()
